"""The `nccl` transport (GPUs, trainer and vLLM on separate devices): trainer rank 0 and every rollout
worker join one extra NCCL group (vLLM's stateless group, so neither side's torch.distributed world is
touched) and rank 0 broadcasts the weights bucket by bucket (`buckets.py`); workers reload each bucket
in place as it lands. Both sides follow one bucket plan, made once by the driver from rank 0's names,
shapes and dtypes. A replaced rollout worker cannot rejoin the group (the run stops with a message).
"""

from __future__ import annotations

import time
from typing import Iterable, Iterator

import ray
import torch

from rlvr.weight_sync.buckets import DEFAULT_BUCKET_BYTES, Bucket, buckets, plan_buckets, tensor_metas, unpack


def nccl_group(host: str, port: int, rank: int, world_size: int, device: torch.device):
    """A NCCL communicator of trainer rank 0 (rank 0 here) and the rollout workers (ranks 1..)."""
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
    return PyNcclCommunicator(group, device=device)


def broadcast(comm, named: Iterable[tuple[str, torch.Tensor]], plan: list[Bucket], device,
              bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    """Rank 0: one broadcast per bucket of `plan` (the receivers allocate from it; made with the same
    `bucket_bytes`)."""
    stream = torch.cuda.current_stream()
    made = 0
    for i, (bucket, buf) in enumerate(buckets(named, bucket_bytes, device)):
        if i >= len(plan) or bucket.entries != plan[i].entries:
            raise RuntimeError(f"weight sync: bucket {i} differs from the receivers' plan (the model changed shape?)")
        comm.broadcast(buf, src=0, stream=stream)
        stream.synchronize()
        made += 1
    if made != len(plan):
        raise RuntimeError(f"weight sync: sent {made} buckets, the receivers wait for {len(plan)}")


def receive(comm, plan: list[Bucket], device) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Workers: yields each bucket's (name, tensor) views as it lands; load them before asking for the next."""
    stream = torch.cuda.current_stream()
    for bucket in plan:
        buf = torch.empty(bucket.nbytes, dtype=torch.uint8, device=device)
        comm.broadcast(buf, src=0, stream=stream)
        stream.synchronize()
        yield unpack(buf, bucket)


class NcclSender:
    """Mixed into the trainer actor (`TrainerWorker`: `self.engine`, `self.rank`)."""

    def init_weight_broadcast(self, host: str, port: int, world_size: int) -> None:
        """Join the NCCL group with the rollout workers (rank 0 sends, the other ranks only gather)."""
        self.comm = nccl_group(host, port, 0, world_size, self.engine.device) if self.rank == 0 else None

    def weight_metas(self) -> list | None:
        state = self.engine.full_state_dict(self.rank)
        return tensor_metas(state) if state is not None else None

    def broadcast_weights(self, plan: list[Bucket], bucket_bytes: int) -> None:
        """Rank 0 broadcasts bucket by bucket (`plan`: the receivers' `plan_buckets`)."""
        weights = self.engine.iter_full_weights(self.rank, device=self.engine.device)
        if self.rank == 0:
            broadcast(self.comm, weights, plan, self.engine.device, bucket_bytes)
        else:
            for _ in weights:  # ZeRO-3: take part in every gather
                pass


class NcclReceiver:
    """Mixed into the rollout actor (`RolloutWorker`: `self.engine`)."""

    def init_weight_broadcast(self, host: str, port: int, rank: int, world_size: int) -> None:
        self.comm = nccl_group(host, port, rank, world_size, _current_device())

    def receive_weights(self, plan: list[Bucket]) -> float:
        """Load each bucket of `plan` as it lands (never a second full copy on the device)."""
        start = time.perf_counter()
        self.engine.wake_up()
        for named in receive(self.comm, plan, _current_device()):
            self.engine.load_weights(named)
        return time.perf_counter() - start


def _current_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


class NcclSync:
    """Driver side: sets up the group and the bucket plan once; each push is one broadcast."""

    def __init__(self, trainers, rollouts, placement, bucket_bytes: int):
        self.trainers, self.rollouts, self.bucket_bytes = trainers, rollouts, bucket_bytes
        host, port = placement.master_address()
        world = 1 + len(rollouts.workers)
        ray.get([r.init_weight_broadcast.remote(host, port, world) for r in trainers.ranks]
                + [w.init_weight_broadcast.remote(host, port, i + 1, world) for i, w in enumerate(rollouts.workers)])
        metas = ray.get([r.weight_metas.remote() for r in trainers.ranks])[0]
        self.plan = plan_buckets(metas, bucket_bytes)

    def push(self) -> None:
        ray.get([r.broadcast_weights.remote(self.plan, self.bucket_bytes) for r in self.trainers.ranks]
                + [w.receive_weights.remote(self.plan) for w in self.rollouts.workers])

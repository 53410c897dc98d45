"""A trainer rank: a Ray actor in one torch.distributed group (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
import time

import ray
import torch


class TrainerWorker:
    """Created with `ray.remote(TrainerWorker).options(...)`; see `trainer.group.TrainerGroup`."""

    def __init__(self, rank: int, world_size: int, master_addr: str, master_port: int, model_dir: str, *,
                 seed: int, optim: dict, trainer: dict, dtype: str, with_reference: bool, plugins: list[str],
                 gradient_checkpointing: bool = False, critic: dict | None = None):
        from rlvr.plugins import import_plugins
        from rlvr.trainer.engine import TrainEngine, init_distributed

        import_plugins(plugins)
        torch.manual_seed(seed)
        self.rank = rank
        self.model_dir = model_dir
        init_distributed(rank, world_size, master_addr, master_port)
        self.engine = TrainEngine(model_dir, optim=optim, trainer=trainer, dtype=dtype, world_size=world_size,
                                  with_reference=with_reference, gradient_checkpointing=gradient_checkpointing)
        self.critic, self.value_clip = None, None
        if critic is not None:  # PPO: the value model, its own engine and optimizer in the same group
            self.value_clip = critic["clip_eps"]
            self.critic = TrainEngine(model_dir, optim=dict(optim, lr=critic["lr"]), trainer=trainer, dtype=dtype,
                                      world_size=world_size, with_reference=False, critic=True,
                                      gradient_checkpointing=gradient_checkpointing)

    def ready(self) -> dict:
        return {"rank": self.rank, "pid": os.getpid(), "threads": torch.get_num_threads()}

    def logprobs(self, batch, temperature: float) -> dict:
        start = time.perf_counter()
        out = self.engine.logprobs(batch, temperature)
        out["seconds"] = time.perf_counter() - start
        return out

    def update(self, shards, counts, n_micro, spec: dict) -> dict:
        return self.engine.update(shards, counts, n_micro, **spec)

    def values(self, batch):
        return self.critic.values(batch)

    def update_values(self, shards, counts, n_micro) -> dict:
        return self.critic.update_values(shards, counts, n_micro, clip_eps=self.value_clip)

    def publish_weights(self) -> list | None:
        """Rank 0 returns [ObjectRef] to the full weights (the list stops Ray from resolving it)."""
        state = self.engine.full_state_dict(self.rank)
        return [ray.put(state)] if state is not None else None

    def init_weight_broadcast(self, host: str, port: int, world_size: int) -> None:
        """GPU only: join the NCCL group with the rollout workers (rank 0 sends, the others wait)."""
        from rlvr import sync

        self.comm = sync.nccl_group(host, port, 0, world_size, self.engine.device) if self.rank == 0 else None

    def broadcast_weights(self, plan: list, bucket_bytes: int) -> None:
        """NCCL: rank 0 broadcasts bucket by bucket (`plan`: the receivers' `sync.plan_buckets`)."""
        from rlvr import sync

        weights = self.engine.iter_full_weights(self.rank, device=self.engine.device)
        if self.rank == 0:
            sync.broadcast(self.comm, weights, plan, self.engine.device, bucket_bytes)
        else:
            for _ in weights:  # ZeRO-3: take part in every gather
                pass

    def send_weights_ipc(self, worker, version: int, bucket_bytes: int) -> float:
        """CUDA IPC (colocated): the full weights, one bucket at a time, into the rollout worker on this
        rank's GPU. Every rank sends to its own worker: `iter_full_weights(0, ...)` yields on every rank
        (ZeRO-1/2: each rank holds the full parameters; ZeRO-3: each parameter is gathered on all ranks,
        one at a time). The worker has loaded a bucket when its call returns; only then is the next packed."""
        from rlvr import sync

        start = time.perf_counter()
        uuid = sync.device_uuid(self.engine.device)
        for bucket, buf in sync.buckets(self.engine.iter_full_weights(0, device=self.engine.device), bucket_bytes,
                                        self.engine.device):
            ray.get(worker.load_ipc_bucket.remote(sync.ipc_handle(buf), bucket, uuid, version))
            del buf
            torch.cuda.ipc_collect()  # the worker has let go of the bucket: its memory can be reused
        return time.perf_counter() - start

    def weight_metas(self) -> list | None:
        from rlvr import sync

        state = self.engine.full_state_dict(self.rank)
        return sync.tensor_metas(state) if state is not None else None

    def state_dict(self) -> dict | None:
        return self.engine.full_state_dict(self.rank)

    def save_checkpoint(self, path: str, tag: str, client_state: dict) -> None:
        self.engine.save_checkpoint(path, tag, client_state)
        if self.critic is not None:
            self.critic.save_checkpoint(f"{path}/critic", tag, client_state)

    def load_checkpoint(self, path: str, tag: str) -> dict:
        if self.critic is not None:
            self.critic.load_checkpoint(f"{path}/critic", tag)
        return self.engine.load_checkpoint(path, tag)

    def export_hf(self, out_dir: str) -> None:
        self.engine.export_hf(out_dir, self.rank, self.model_dir)

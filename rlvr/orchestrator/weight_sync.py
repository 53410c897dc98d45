"""Weight sync: the trainer's new weights into every vLLM worker after each optimizer step, through one
interface with backends (see `rlvr.sync`): the Ray object store (CPU), NCCL broadcast (GPU,
disaggregated) or CUDA IPC (GPU, colocated)."""

from __future__ import annotations

import time

import ray

from rlvr.orchestrator.groups import RolloutGroup, TrainerGroup
from rlvr.orchestrator.placement import Placement


class WeightSync:
    """Trainer -> every rollout worker, after each optimizer step (see `rlvr.sync`)."""

    def __init__(self, backend: str, trainers: TrainerGroup, rollouts: RolloutGroup, placement: Placement | None,
                 *, bucket_bytes: int | None = None):
        from rlvr import sync

        colocated = placement is not None and placement.colocated
        cuda = placement.gpus > 0 if placement is not None else None
        self.backend = sync.choose_backend(backend, colocated=colocated, cuda=cuda)
        self.bucket_bytes = bucket_bytes or sync.DEFAULT_BUCKET_BYTES
        self.trainers, self.rollouts = trainers, rollouts
        print(f"[rlvr] weight sync: {self.backend}"
              + (f" (buckets of {self.bucket_bytes >> 20} MiB)" if self.backend != "object_store" else ""), flush=True)
        if self.backend == "nccl":
            host, port = placement.master_address()
            world = 1 + len(rollouts.workers)
            ray.get([r.init_weight_broadcast.remote(host, port, world) for r in trainers.ranks]
                    + [w.init_weight_broadcast.remote(host, port, i + 1, world)
                       for i, w in enumerate(rollouts.workers)])
            metas = ray.get([r.weight_metas.remote() for r in trainers.ranks])[0]
            self.plan = sync.plan_buckets(metas, self.bucket_bytes)
        elif self.backend == "cuda_ipc" and len(rollouts.workers) != len(trainers.ranks):
            raise ValueError("trainer.weight_sync=cuda_ipc pairs trainer rank i with rollout worker i: "
                             "rollout.num_workers must equal trainer.num_ranks")

    def __call__(self, version: int) -> float:
        start = time.perf_counter()
        if self.backend == "object_store":
            self.rollouts.update_weights(self.trainers.publish_weights(), version)
        elif self.backend == "nccl":
            ray.get([r.broadcast_weights.remote(self.plan, self.bucket_bytes) for r in self.trainers.ranks]
                    + [w.receive_weights.remote(self.plan, version) for w in self.rollouts.workers])
            self.rollouts.version = version
        else:  # cuda_ipc: each rank hands its own GPU's worker one bucket at a time (every rank takes part
            # in the ZeRO-3 gathers); the ranks call the workers themselves, so no weights pass the driver
            ray.get([r.send_weights_ipc.remote(w, version, self.bucket_bytes)
                     for r, w in zip(self.trainers.ranks, self.rollouts.workers)])
            self.rollouts.version = version
        return time.perf_counter() - start

"""Weight sync: trainer rank 0's new weights into every vLLM worker after each optimizer step, through
one interface with backends (see `rlvr.sync`): the Ray object store (CPU) or NCCL broadcast (GPU)."""

from __future__ import annotations

import time

import ray

from rlvr.orchestrator.groups import RolloutGroup, TrainerGroup
from rlvr.orchestrator.placement import Placement


class WeightSync:
    """Trainer rank 0 -> every rollout worker, after each optimizer step (see `rlvr.sync`)."""

    def __init__(self, backend: str, trainers: TrainerGroup, rollouts: RolloutGroup, placement: Placement):
        from rlvr import sync

        self.backend = sync.choose_backend(backend)
        self.trainers, self.rollouts = trainers, rollouts
        if self.backend == "nccl":
            host, port = placement.master_address()
            world = 1 + len(rollouts.workers)
            ray.get([r.init_weight_broadcast.remote(host, port, world) for r in trainers.ranks]
                    + [w.init_weight_broadcast.remote(host, port, i + 1, world)
                       for i, w in enumerate(rollouts.workers)])
            self.metas = ray.get([r.weight_metas.remote() for r in trainers.ranks])[0]

    def __call__(self, version: int) -> float:
        start = time.perf_counter()
        if self.backend == "object_store":
            self.rollouts.update_weights(self.trainers.publish_weights(), version)
        else:
            ray.get([r.broadcast_weights.remote() for r in self.trainers.ranks]
                    + [w.receive_weights.remote(self.metas, version) for w in self.rollouts.workers])
            self.rollouts.version = version
        return time.perf_counter() - start

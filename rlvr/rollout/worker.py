"""The rollout worker: a Ray actor that owns one vLLM engine and takes new weights in place."""

from __future__ import annotations

import os
import time

import ray

from rlvr.weight_sync.cuda_ipc import CudaIpcReceiver
from rlvr.weight_sync.nccl import NcclReceiver
from rlvr.weight_sync.object_store import ObjectStoreReceiver


class RolloutWorker(ObjectStoreReceiver, NcclReceiver, CudaIpcReceiver):
    """Created with `ray.remote(RolloutWorker).options(...)`; see `rlvr.orchestrator.groups.RolloutGroup`.
    The weight-sync methods come from the transports' receiver mixins (`rlvr.weight_sync`); which weight
    version the engine holds is the group's to know (`RolloutGroup.version`).

    `cfg`: the typed `rlvr.config.Config` (its rollout, model.dtype, seed and algorithm.plugins are read)."""

    def __init__(self, model_dir: str, cfg, *, worker_index: int = 0, sleep_mode: bool = False):
        from rlvr.plugins import import_plugins

        import_plugins(cfg.algorithm.plugins)
        from rlvr.rollout.engine import VLLMEngine

        self.index = worker_index
        self.engine = VLLMEngine.from_rollout_config(model_dir, cfg.rollout, seed=cfg.seed + 1000 * worker_index,
                                                     dtype=cfg.model.dtype, sleep_mode=sleep_mode)

    def ready(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "index": self.index, "node_id": ctx.get_node_id(),
                "node_ip": ray.util.get_node_ip_address(), "can_sleep": self.engine.can_sleep}

    def sleep(self) -> float:
        """Colocated on a GPU: free the device for the trainer (weights to CPU, KV cache dropped)."""
        start = time.perf_counter()
        self.engine.sleep()
        return time.perf_counter() - start

    def wake_up(self) -> float:
        start = time.perf_counter()
        self.engine.wake_up()
        return time.perf_counter() - start

    def generate(self, prompts: list[list[int]], params: dict) -> dict:
        start = time.perf_counter()
        self.engine.wake_up()  # a no-op unless asleep: never generate from offloaded weights
        samples = self.engine.generate(prompts, **params)
        return {"samples": samples, "seconds": time.perf_counter() - start, "worker": self.index}

    def engine_weights(self) -> dict:
        self.engine.wake_up()
        return self.engine.linear_weights()

"""The rollout worker: a Ray actor that owns one vLLM engine and takes new weights in place."""

from __future__ import annotations

import os
import time

import ray


class RolloutWorker:
    """Created with `ray.remote(RolloutWorker).options(...)`; see `rollout.group.RolloutGroup`."""

    def __init__(self, model_dir: str, *, seed: int, dtype: str, rollout: dict, plugins: list[str],
                 worker_index: int = 0, sleep_mode: bool = False):
        from rlvr.plugins import import_plugins

        import_plugins(plugins)
        from rlvr.rollout.engine import VLLMEngine

        self.index = worker_index
        self.version = 0
        threads = max(1, int(float(os.environ.get("RLVR_ROLLOUT_THREADS", "2"))))
        self.engine = VLLMEngine(
            model_dir, seed=seed + 1000 * worker_index, dtype=dtype, max_model_len=rollout.get("max_model_len"),
            kv_cache_gb=rollout.get("kv_cache_gb", 1.0), enforce_eager=rollout.get("enforce_eager", True),
            gpu_memory_utilization=rollout.get("gpu_memory_utilization", 0.5), threads=threads,
            sleep_mode=sleep_mode,
        )

    def ready(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "index": self.index, "version": self.version, "node_id": ctx.get_node_id(),
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
        return {"samples": samples, "seconds": time.perf_counter() - start, "version": self.version,
                "worker": self.index}

    def update_weights(self, weights_ref: list, version: int) -> float:
        """`weights_ref` is a one-element list holding an ObjectRef, so Ray passes the reference
        through and this actor fetches the tensors itself (zero-copy from the object store)."""
        start = time.perf_counter()
        weights = ray.get(weights_ref[0])
        self.engine.wake_up()
        self.engine.load_weights(weights.items())
        self.version = version
        return time.perf_counter() - start

    def init_weight_broadcast(self, host: str, port: int, rank: int, world_size: int) -> None:
        import torch

        from rlvr import sync

        self.comm = sync.nccl_group(host, port, rank, world_size, torch.device("cuda", torch.cuda.current_device()))

    def receive_weights(self, plan: list, version: int) -> float:
        """NCCL: load each bucket of `plan` as it lands (never a second full copy on the device)."""
        import torch

        from rlvr import sync

        start = time.perf_counter()
        self.engine.wake_up()
        for named in sync.receive(self.comm, plan, torch.device("cuda", torch.cuda.current_device())):
            self.engine.load_weights(named)
        self.version = version
        return time.perf_counter() - start

    def load_ipc_bucket(self, handle: tuple, bucket, sender_uuid: str, version: int) -> float:
        """CUDA IPC: one bucket of the colocated trainer rank's weights, read in place from its memory.
        Returns once vLLM has copied it, so the trainer may free or reuse the buffer."""
        import torch

        from rlvr import sync

        start = time.perf_counter()
        self.engine.wake_up()
        buf = sync.open_ipc_handle(handle, sender_uuid=sender_uuid)
        self.engine.load_weights(sync.unpack(buf, bucket))
        torch.cuda.synchronize()
        del buf
        self.version = version
        return time.perf_counter() - start

    def engine_weights(self) -> dict:
        self.engine.wake_up()
        return self.engine.linear_weights()

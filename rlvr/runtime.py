"""Process environment shared by the driver and every Ray actor.

Each entry answers a trap measured in NOTES-CPU.md: vLLM's engine in the calling process, a bounded
CPU KV cache, compile caches and temp files inside the project's cache dir (no /tmp or /dev/shm
leaks), Ray on loopback, zero-copy tensors through the object store. DeepSpeed's accelerator is the
one exception: each trainer actor decides it from its own devices (`use_local_accelerator`).
"""

from __future__ import annotations

import os
from pathlib import Path


def actor_env(cache_dir: str | Path, *, kv_cache_gb: float = 1.0, threads: int = 1) -> dict[str, str]:
    cache = Path(cache_dir).resolve()
    tmp = cache / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",          # the engine lives inside the rollout actor
        "VLLM_CPU_KVCACHE_SPACE": str(max(1, int(round(kv_cache_gb)))),
        # vLLM logs every weight reload (and a benign rotary-cache warning each time): quiet by default
        "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "ERROR"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        "TORCH_EXTENSIONS_DIR": str(cache / "torch_extensions"),
        "TMPDIR": str(tmp),
        "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def driver_env(cache_dir: str | Path) -> dict[str, str]:
    """Set before Ray starts: temp files inside the cache dir (loopback binding: see start_ray)."""
    cache = Path(cache_dir).resolve()
    (cache / "ray").mkdir(parents=True, exist_ok=True)
    env = {
        "RAY_TMPDIR": str(cache / "ray"),
        "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
        "RAY_DEDUP_LOGS": "1",
        "DS_ACCELERATOR": "cuda" if _has_cuda() else "cpu",
        "TOKENIZERS_PARALLELISM": "false",
    }
    os.environ.update(env)
    return env


def use_local_accelerator() -> None:
    """DeepSpeed picks its accelerator from DS_ACCELERATOR when it is first imported. A trainer actor
    calls this before that, so its own devices decide (an actor without GPUs on a GPU cluster, or the
    reverse), not those of the driver whose environment Ray's workers inherit."""
    os.environ["DS_ACCELERATOR"] = "cuda" if _has_cuda() else "cpu"


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken: the caller fails later with a clearer error
        return False

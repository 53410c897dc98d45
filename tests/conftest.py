"""Shared fixtures. System tests run the real stack (Ray, vLLM, DeepSpeed); they share one cache
directory so the tiny model and compile caches are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu") and not cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    path = Path(os.environ.get("RLVR_TEST_CACHE", ROOT / ".cache" / "tests"))
    path.mkdir(parents=True, exist_ok=True)
    return path

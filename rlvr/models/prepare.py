"""The model a run starts from: a user's checkpoint as is, a catalog model (`model.path: smollm2-135m`,
converted once into `cache_dir/models/<name>`, see catalog.py), or the tiny model, built and warm-started
once and cached under `cache_dir/models/<key of its config>`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path


def prepare_model(model_cfg, problems: list[dict], *, cache_dir: str, seed: int, log=print) -> str:
    """The model directory a run starts from, for a ``ModelConfig`` (read by attribute)."""
    if model_cfg.path:
        from rlvr.models.catalog import ensure_model, is_catalog_name

        if is_catalog_name(model_cfg.path):  # a pretrained model's warm start is not ours to do
            return ensure_model(model_cfg.path, cache_dir, log=log)
        return model_cfg.path
    tiny, ws = _plain(model_cfg.tiny), model_cfg.warmstart
    # the cache key hashes the same JSON as when the config was a dict: cached models stay valid
    spec = {"tiny": tiny, "warmstart": _plain(ws), "seed": seed,
            "problems": hashlib.sha256(json.dumps(problems, sort_keys=True).encode()).hexdigest()}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    out = Path(cache_dir, "models", f"tiny-{key}").resolve()
    if (out / "config.json").exists():
        log(f"model: cached tiny model {out}")
        return str(out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    from rlvr.models.tiny import build_tiny_model
    from rlvr.models.warmstart import warm_start

    model = build_tiny_model(tmp, seed=seed, **tiny)
    if ws.steps > 0:
        loss = warm_start(model, tmp, problems, steps=ws.steps, lr=ws.lr, batch_size=ws.batch_size, seed=seed)
        log(f"model: warm start {ws.steps} supervised steps, final loss {loss:.3f}")
        model.save_pretrained(str(tmp), safe_serialization=True)
    (tmp / "rlvr_spec.json").write_text(json.dumps(spec, indent=1))
    tmp.rename(out)  # atomic: a half-built model is never picked up
    log(f"model: built tiny model {out}")
    return str(out)


def _plain(block) -> dict:
    """A config block (dataclass, OmegaConf node or dict) as a plain dict, for hashing and ``**kwargs``."""
    if dataclasses.is_dataclass(block):
        return dataclasses.asdict(block)
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)

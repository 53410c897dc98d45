"""Value checks shared by the schema's validators: each failure is one line naming the key."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


def _check(ok: bool, key: str, value: Any, why: str) -> None:
    if not ok:
        raise ConfigError(f"config error: {key}={value!r}: {why}")


def _one_of(cfg: DictConfig, key: str, choices) -> None:
    value = OmegaConf.select(cfg, key)
    _check(value in choices, key, value, f"must be one of {', '.join(map(str, choices))}")


def _positive(cfg: DictConfig, key: str, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = value is not None and (value >= 0 if allow_zero else value > 0)
    _check(ok, key, value, "must be >= 0" if allow_zero else "must be > 0")



"""Typed configuration: dataclasses registered with Hydra's ConfigStore, plus value checks.

Hydra rejects unknown keys and wrong types (the schema is structured); `validate` rejects bad values
with one line that names the key. The YAML files under `configs/` only fill these in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from rlvr.config.algorithm import (
    CRITIC_DEFAULTS,
    AlgorithmConfig,
    CorrectionConfig,
    CriticConfig,
    DCMDPConfig,
    OverlongConfig,
    correction_params,
    overlong_cache_len,
    resolve_critic,
)
from rlvr.config.checks import ConfigError
from rlvr.config.schema import (
    GROUPS,
    ClusterConfig,
    Config,
    DataConfig,
    EvalScheduleConfig,
    GeneratedDataConfig,
    LoggerConfig,
    ModelConfig,
    OptimConfig,
    OrchestratorConfig,
    RolloutConfig,
    TinyModelConfig,
    TrainerConfig,
    VerifierConfig,
    WandbConfig,
    WarmStartConfig,
)
from rlvr.config.validate import validate

__all__ = [
    "AlgorithmConfig", "CRITIC_DEFAULTS", "ClusterConfig", "Config", "ConfigError", "CorrectionConfig",
    "CriticConfig", "DCMDPConfig", "DataConfig", "EvalScheduleConfig", "GROUPS", "GeneratedDataConfig",
    "LoggerConfig", "ModelConfig", "OptimConfig", "OrchestratorConfig", "OverlongConfig", "RolloutConfig",
    "TinyModelConfig", "TrainerConfig", "VerifierConfig", "WandbConfig", "WarmStartConfig", "as_dict",
    "compose", "config_dir", "correction_params", "overlong_cache_len", "register_configs", "resolve_critic",
    "to_container", "to_object", "validate",
]


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="rlvr_schema", node=Config)
    for group, schema in GROUPS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)


def config_dir() -> Path:
    """`configs/` beside the package (an editable install or a checkout); RLVR_CONFIG_DIR overrides."""
    import os

    env = os.environ.get("RLVR_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs"


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def to_object(cfg: DictConfig) -> Config:
    """The validated Hydra config as the typed `Config` the whole run receives (plain dataclasses)."""
    return OmegaConf.to_object(cfg)


def as_dict(cfg: Config) -> dict:
    """A typed config as plain nested dicts (config.json, W&B)."""
    return dataclasses.asdict(cfg)


def compose(overrides: list[str] | None = None, *, validate_values: bool = True) -> Config:
    """The typed config `rlvr train OVERRIDES` would run with (Hydra's compose API).
    For tests and scripts; `output_dir` must be among the overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    if validate_values:
        validate(cfg)
    return to_object(cfg)

"""Typed configuration: dataclasses registered with Hydra's ConfigStore, plus value checks.

Hydra rejects unknown keys and wrong types (the schema is structured); `validate` rejects bad values
with one line that names the key. The YAML files under `configs/` only fill these in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


@dataclass
class TinyModelConfig:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_positions: int = 256


@dataclass
class WarmStartConfig:
    steps: int = 300            # supervised steps on generated problems before RL (0: none)
    lr: float = 2e-3
    batch_size: int = 32


@dataclass
class ModelConfig:
    path: Optional[str] = None  # an HF causal-LM directory or hub name; None: the tiny local model
    dtype: str = "float32"      # float32 | bfloat16
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    warmstart: WarmStartConfig = field(default_factory=WarmStartConfig)
    gradient_checkpointing: bool = False


@dataclass
class GeneratedDataConfig:
    train_size: int = 4000
    heldout_size: int = 200
    max_operand: int = 10
    ops: List[str] = field(default_factory=lambda: ["+", "-"])


@dataclass
class DataConfig:
    train_path: Optional[str] = None   # jsonl/parquet file or hub name; None: generated problems
    eval_path: Optional[str] = None
    prompt_key: Optional[str] = None   # None: the format's own field (question / problem)
    answer_key: Optional[str] = None   # None: the format's own field (answer / solution)
    format: str = "auto"               # auto | gsm8k | math | plain
    subset: Optional[str] = None       # hub data sets only: the config name (e.g. "main" for openai/gsm8k)
    train_split: str = "train"         # hub data sets only
    eval_split: str = "test"
    template: str = "plain"            # plain | boxed_instruction | chat
    system_prompt: Optional[str] = None
    instruction: Optional[str] = None  # after the question (boxed_instruction, chat); None: the \boxed{} one
    prompts_per_step: int = 32
    eval_size: int = 200               # held-out problems scored before and after RL (0: all)
    on_bad_row: str = "error"          # error | skip
    generated: GeneratedDataConfig = field(default_factory=GeneratedDataConfig)


@dataclass
class RolloutConfig:
    n: int = 8                         # samples per prompt (the GRPO group)
    max_tokens: int = 24
    temperature: float = 1.0
    top_p: float = 1.0
    stop: List[str] = field(default_factory=list)
    num_workers: int = 1
    kv_cache_gb: float = 1.0           # CPU KV-cache space per worker
    cpu_threads: int = 2               # CPU only: torch threads of each vLLM worker
    gpu_memory_utilization: float = 0.5
    max_model_len: Optional[int] = None
    enforce_eager: bool = True
    eval_temperature: float = 1.0      # held-out accuracy: mean over eval_n samples at this temperature
    eval_n: int = 4                    # (greedy accuracy is reported beside it)
    source: str = "generate"           # generate (vLLM, on-policy) | offline (samples logged by `rlvr rollout`)
    offline_path: Optional[str] = None # rollout.source=offline: the parquet file (or directory of them)


@dataclass
class TrainerConfig:
    total_steps: int = 80
    num_ranks: int = 2
    zero_stage: int = 2
    micro_batch_size: int = 32         # sequences per forward/backward on one rank (token_budget=0)
    token_budget: int = 0              # >0: micro-batches of length-sorted sequences up to this many tokens
    grad_clip: float = 1.0
    save_every: int = 0                # 0: only at the end
    keep_checkpoints: int = 3          # the last k complete checkpoints are kept (0: all)
    max_nonfinite_steps: int = 3       # stop after this many optimizer steps in a row skipped for NaN/inf
    check_weight_sync: bool = False    # after every sync, compare vLLM's weights with the trainer's (slow)
    weight_sync: str = "auto"          # auto | object_store | nccl (GPU, disaggregated) | cuda_ipc (GPU, colocated)


@dataclass
class OptimConfig:
    name: str = "adamw"                # adamw | sgd (sgd: plain gradient steps, for exact checks)
    lr: float = 3e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    warmup_steps: int = 0


@dataclass
class AlgorithmConfig:
    name: str = "grpo"
    advantage: str = "grpo"
    advantage_params: Dict[str, Any] = field(default_factory=dict)
    objective: str = "grpo"
    objective_params: Dict[str, Any] = field(default_factory=dict)
    loss_agg_mode: Optional[str] = None
    correction: Dict[str, Any] = field(default_factory=lambda: {"mode": "none"})
    reward: str = "correctness"        # correctness | plus_minus | format | custom
    dynamic_sampling: bool = False
    max_gen_batches: int = 3
    overlong: Dict[str, Any] = field(default_factory=lambda: {"enabled": False, "cache_len": 0})
    dcmdp: Dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    critic: Dict[str, Any] = field(default_factory=dict)  # advantage=gae: the value model's settings
    ppo_epochs: int = 1
    mini_batches: int = 1
    plugins: List[str] = field(default_factory=list)


@dataclass
class VerifierConfig:
    mode: str = "process"              # inline | process | ray | http
    workers: int = 2
    timeout_s: float = 5.0
    max_chars: int = 20000
    memory_mb: int = 1024
    strict: bool = False
    answer_format: str = "auto"        # auto | boxed | answer_line | gsm8k
    url: Optional[str] = None
    token: Optional[str] = None
    format_weight: float = 0.1
    custom_reward: Optional[str] = None  # "pkg.module:function"


@dataclass
class ClusterConfig:
    address: Optional[str] = None      # None: start a local Ray; "auto" or host:port: join a cluster
    num_cpus: Optional[int] = None     # for a local Ray
    cpus_per_actor: float = 0.5        # fractional CPUs let a 2-core machine place every actor
    gpus_per_actor: float = 0.0
    placement: str = "disaggregated"   # disaggregated (own devices) | colocated (trainer and vLLM share; vLLM sleeps)


@dataclass
class WandbConfig:
    mode: str = "offline"              # online | offline | disabled
    project: str = "rlvr"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    backends: List[str] = field(default_factory=lambda: ["jsonl", "wandb"])
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: bool = True
    samples_every: int = 10            # a W&B table of sample completions with rewards every k steps (0: never)


@dataclass
class OrchestratorConfig:
    mode: str = "sync"                 # sync (exactly on-policy) | async (generation runs ahead of training)
    max_staleness: int = 1             # async: samples at most this many weight versions old are trained on


@dataclass
class EvalScheduleConfig:
    every_steps: int = 0               # held-out evaluation every k steps during training (0: before/after only)


@dataclass
class Config:
    output_dir: str = MISSING
    cache_dir: str = ".cache"
    seed: int = 0
    resume: Optional[str] = None       # auto: the latest complete checkpoint in output_dir; or a step_N dir
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
    eval: EvalScheduleConfig = field(default_factory=EvalScheduleConfig)


GROUPS = {"algorithm": AlgorithmConfig, "model": ModelConfig, "data": DataConfig, "rollout": RolloutConfig,
          "trainer": TrainerConfig, "verifier": VerifierConfig, "cluster": ClusterConfig,
          "logger": LoggerConfig}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="rlvr_schema", node=Config)
    for group, schema in GROUPS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)


def config_dir() -> Path:
    """`configs/` beside the package (an editable install or a checkout); RLVR_CONFIG_DIR overrides."""
    import os

    env = os.environ.get("RLVR_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "configs"


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


def validate(cfg: DictConfig) -> None:
    """Value checks that types alone cannot express. Raises ConfigError naming the key."""
    for key in ("data.prompts_per_step", "rollout.n", "rollout.max_tokens", "rollout.num_workers",
                "trainer.num_ranks", "trainer.micro_batch_size", "optim.lr", "verifier.workers",
                "verifier.timeout_s", "verifier.max_chars", "algorithm.ppo_epochs", "algorithm.mini_batches",
                "algorithm.max_gen_batches", "cluster.cpus_per_actor", "rollout.eval_n", "trainer.max_nonfinite_steps",
                "rollout.cpu_threads"):
        _positive(cfg, key)
    for key in ("trainer.total_steps", "trainer.save_every", "eval.every_steps", "trainer.token_budget",
                "rollout.temperature", "logger.samples_every", "optim.weight_decay", "optim.warmup_steps",
                "model.warmstart.steps", "data.eval_size", "trainer.grad_clip", "trainer.keep_checkpoints"):
        _positive(cfg, key, allow_zero=True)
    _check(0 < cfg.rollout.top_p <= 1, "rollout.top_p", cfg.rollout.top_p, "must be in (0, 1]")
    _one_of(cfg, "trainer.zero_stage", (0, 1, 2, 3))
    _one_of(cfg, "optim.name", ("adamw", "sgd"))
    _one_of(cfg, "trainer.weight_sync", ("auto", "object_store", "nccl", "cuda_ipc"))
    _one_of(cfg, "orchestrator.mode", ("sync", "async"))
    _positive(cfg, "orchestrator.max_staleness")
    _one_of(cfg, "rollout.source", ("generate", "offline"))
    _check(cfg.rollout.source != "offline" or bool(cfg.rollout.offline_path), "rollout.offline_path",
           cfg.rollout.offline_path, "required when rollout.source=offline")
    _check(cfg.rollout.source != "offline" or not cfg.algorithm.dynamic_sampling, "algorithm.dynamic_sampling",
           True, "cannot filter groups of logged samples (rollout.source=offline): set it to false")
    _one_of(cfg, "cluster.placement", ("disaggregated", "colocated"))
    _check(cfg.trainer.weight_sync != "cuda_ipc" or cfg.cluster.placement == "colocated", "trainer.weight_sync",
           cfg.trainer.weight_sync, "cuda_ipc needs cluster.placement=colocated")
    _check(cfg.cluster.placement != "colocated" or cfg.rollout.num_workers == cfg.trainer.num_ranks,
           "rollout.num_workers", cfg.rollout.num_workers,
           "must equal trainer.num_ranks when cluster.placement=colocated")
    _one_of(cfg, "model.dtype", ("float32", "bfloat16"))
    _one_of(cfg, "data.format", ("auto", "gsm8k", "math", "plain"))
    _one_of(cfg, "data.template", ("plain", "boxed_instruction", "chat"))
    _check(cfg.data.system_prompt is None or cfg.data.template == "chat", "data.system_prompt",
           cfg.data.system_prompt, "needs data.template=chat")
    _check(cfg.data.instruction is None or cfg.data.template != "plain", "data.instruction", cfg.data.instruction,
           "needs data.template=boxed_instruction or chat")
    _one_of(cfg, "data.on_bad_row", ("error", "skip"))
    _one_of(cfg, "verifier.mode", ("inline", "process", "ray", "http"))
    _one_of(cfg, "verifier.answer_format", ("auto", "boxed", "answer_line", "gsm8k"))
    _one_of(cfg, "algorithm.reward", ("correctness", "plus_minus", "format", "custom"))
    _one_of(cfg, "logger.wandb.mode", ("online", "offline", "disabled"))
    for backend in cfg.logger.backends:
        _check(backend in ("jsonl", "wandb", "tensorboard"), "logger.backends", backend,
               "must be one of jsonl, wandb, tensorboard")
    _check(cfg.verifier.mode != "http" or bool(cfg.verifier.url), "verifier.url", cfg.verifier.url,
           "required when verifier.mode=http")
    samples = cfg.data.prompts_per_step * cfg.rollout.n
    _check(samples % cfg.algorithm.mini_batches == 0, "algorithm.mini_batches", cfg.algorithm.mini_batches,
           f"must divide data.prompts_per_step * rollout.n = {samples}")
    for key in ("data.train_path", "data.eval_path"):
        path = OmegaConf.select(cfg, key)
        if path and not path.startswith("reasoning_gym:") and _looks_local(path):
            _check(Path(path).exists(), key, path, "file not found")
    from rlvr.models.catalog import is_catalog_name

    if cfg.model.path and not is_catalog_name(cfg.model.path) and _looks_local(cfg.model.path):
        _check((Path(cfg.model.path) / "config.json").exists(), "model.path", cfg.model.path,
               "not an HF model directory (no config.json)")
    _validate_algorithm(cfg)


_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _looks_local(path: str) -> bool:
    """Hub names look like 'org/name' (dots allowed: 'Qwen/Qwen2.5-Math-1.5B'); a path that exists, is
    absolute, starts with '.' or '~', has a data-file suffix, or is not org/name is local."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute() or path.startswith((".", "~")) or p.suffix.lower() in (".jsonl", ".json",
                                                                                              ".parquet"):
        return True
    return not _HUB_NAME.fullmatch(path)


def _validate_algorithm(cfg: DictConfig) -> None:
    from rlvr import algorithms

    algo = cfg.algorithm
    _check(algo.objective in algorithms.OBJECTIVES, "algorithm.objective", algo.objective,
           f"unknown objective; valid: {', '.join(sorted(algorithms.OBJECTIVES))}")
    _check(algo.advantage in algorithms.ADVANTAGES, "algorithm.advantage", algo.advantage,
           f"unknown advantage; valid: {', '.join(sorted(algorithms.ADVANTAGES))}")
    try:
        resolve_critic(OmegaConf.to_container(algo, resolve=True), {"lr": cfg.optim.lr})
    except ValueError as err:
        raise ConfigError(f"config error: algorithm.critic: {err}") from None
    if algo.loss_agg_mode is not None:
        _check(algo.loss_agg_mode in algorithms.AGG_MODES, "algorithm.loss_agg_mode", algo.loss_agg_mode,
               f"must be one of {', '.join(algorithms.AGG_MODES)}")
    params = dict(OmegaConf.to_container(algo.objective_params, resolve=True))
    if algo.dcmdp.get("enabled"):
        params.update(dcmdp_lambda=algo.dcmdp.get("lambda_init", 0.1), tolerance=algo.dcmdp.get("tolerance", 0.004))
    for key, resolve, name, p in (
            ("algorithm.objective_params", algorithms.resolve_objective_params, algo.objective, params),
            ("algorithm.advantage_params", algorithms.resolve_advantage_params, algo.advantage,
             OmegaConf.to_container(algo.advantage_params, resolve=True))):
        try:
            resolve(name, p)
        except (ValueError, TypeError, KeyError) as err:
            hint = (" (params merge with the preset's: to switch objective, start from its preset, "
                    "algorithm=<key>, or a preset file of your own)") if "unknown param" in str(err) else ""
            raise ConfigError(f"config error: {key}: {err}{hint}") from None
    correction = OmegaConf.to_container(algo.correction, resolve=True)
    try:
        algorithms.resolve_correction(correction)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"config error: algorithm.correction: {err}") from None
    if algo.overlong.get("enabled"):
        cache_len = overlong_cache_len(algo.overlong, cfg.rollout.max_tokens)
        _check(0 < cache_len <= cfg.rollout.max_tokens, "algorithm.overlong.cache_len", cache_len,
               f"must be in (0, rollout.max_tokens={cfg.rollout.max_tokens}]")


CRITIC_DEFAULTS = {"lr": None, "clip_eps": 0.2}  # lr None: optim.lr


def resolve_critic(algo: dict, optim: dict) -> dict | None:
    """The value model's settings (`algorithm.critic`) when the advantage is GAE, else None."""
    from rlvr import algorithms

    uses_gae = algorithms.ADVANTAGES[algo["advantage"]].fn is algorithms.ADVANTAGES["gae"].fn
    critic = dict(algo.get("critic") or {})
    unknown = set(critic) - set(CRITIC_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; valid: {', '.join(CRITIC_DEFAULTS)}")
    if not uses_gae:
        if critic:
            raise ValueError(f"set, but advantage {algo['advantage']!r} uses no critic (only gae does)")
        return None
    out = {**CRITIC_DEFAULTS, **critic}
    out["lr"] = optim["lr"] if out["lr"] is None else out["lr"]
    if not (isinstance(out["lr"], (int, float)) and out["lr"] > 0):
        raise ValueError(f"lr={out['lr']!r} must be > 0")
    if not (isinstance(out["clip_eps"], (int, float)) and out["clip_eps"] >= 0):
        raise ValueError(f"clip_eps={out['clip_eps']!r} must be >= 0 (0: no value clipping)")
    return out


def overlong_cache_len(overlong, max_tokens: int) -> int:
    """DAPO's overlong cache in tokens: `cache_len`, or `cache_frac` of the max response length."""
    if overlong.get("cache_len") is not None:
        return int(overlong["cache_len"])
    return max(1, round(float(overlong.get("cache_frac", 0.2)) * max_tokens))


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def compose(overrides: list[str] | None = None, *, validate_values: bool = True) -> dict:
    """The config `rlvr train OVERRIDES` would run with, as a plain dict (Hydra's compose API).
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
    return to_container(cfg)

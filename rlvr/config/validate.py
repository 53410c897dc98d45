"""`validate`: value checks that types alone cannot express, each raising one line that names the key."""

from __future__ import annotations

import difflib
import re
from dataclasses import is_dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rlvr.config.algorithm import _validate_algorithm
from rlvr.config.checks import ConfigError, _check, _one_of, _positive


def validate(cfg: DictConfig) -> None:
    """Value checks that types alone cannot express. Raises ConfigError naming the key."""
    _validate_known_keys(cfg)
    _validate_ranges(cfg)
    _validate_choices(cfg)
    _validate_rewards(cfg)
    _validate_paths(cfg)
    _validate_algorithm(cfg)


def _validate_known_keys(cfg: DictConfig) -> None:
    """Hydra's `+key=value` adds a key even where the schema has none (`+trainer.total_step=500`), and the typed
    config would then drop it without a word: every key must be the schema's (free-form dicts aside)."""
    from rlvr.config.schema import Config

    for key, valid in _unknown_keys(cfg, OmegaConf.structured(Config)):
        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=1)
        hint = f"did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?" if close else (
            f"valid: {', '.join(valid)}")
        raise ConfigError(f"config error: {key}: unknown key; {hint}")


def _unknown_keys(cfg: DictConfig, schema: DictConfig, prefix: str = "") -> list[tuple[str, list[str]]]:
    out, known = [], [str(k) for k in schema.keys()]  # (`key in schema` is False for a MISSING value)
    for key in cfg.keys():
        if key not in known:
            out.append((f"{prefix}{key}", known))
            continue
        node, ref = cfg._get_node(key), schema._get_node(key)
        if isinstance(node, DictConfig) and isinstance(ref, DictConfig) and is_dataclass(OmegaConf.get_type(ref)):
            out += _unknown_keys(node, ref, f"{prefix}{key}.")
    return out


def _validate_ranges(cfg: DictConfig) -> None:
    for key in ("data.prompts_per_step", "rollout.n", "rollout.max_tokens", "rollout.num_workers",
                "trainer.num_ranks", "trainer.micro_batch_size", "optim.lr", "verifier.workers",
                "verifier.timeout_s", "verifier.max_chars", "algorithm.ppo_epochs", "algorithm.mini_batches",
                "algorithm.max_gen_batches", "cluster.cpus_per_actor", "rollout.eval_n", "trainer.max_nonfinite_steps",
                "rollout.cpu_threads", "trainer.logprob_chunk_mib"):
        _positive(cfg, key)
    for key in ("trainer.total_steps", "trainer.save_every", "eval.every_steps", "trainer.token_budget",
                "rollout.temperature", "logger.samples_every", "optim.weight_decay", "optim.warmup_steps",
                "model.warmstart.steps", "data.eval_size", "trainer.grad_clip", "trainer.keep_checkpoints",
                "trainer.save_every_minutes"):
        _positive(cfg, key, allow_zero=True)
    _check(cfg.data.max_prompt_tokens is None or cfg.data.max_prompt_tokens >= 1, "data.max_prompt_tokens",
           cfg.data.max_prompt_tokens, "must be >= 1, or null for the context minus rollout.max_tokens")
    _check(0 < cfg.rollout.top_p <= 1, "rollout.top_p", cfg.rollout.top_p, "must be in (0, 1]")
    _positive(cfg, "orchestrator.max_staleness")
    samples = cfg.data.prompts_per_step * cfg.rollout.n
    _check(samples % cfg.algorithm.mini_batches == 0, "algorithm.mini_batches", cfg.algorithm.mini_batches,
           f"must divide data.prompts_per_step * rollout.n = {samples}")


def _validate_choices(cfg: DictConfig) -> None:
    _one_of(cfg, "trainer.zero_stage", (0, 1, 2, 3))
    _one_of(cfg, "optim.name", ("adamw", "sgd"))
    _one_of(cfg, "trainer.weight_sync", ("auto", "object_store", "nccl", "cuda_ipc"))
    _one_of(cfg, "orchestrator.mode", ("sync", "async"))
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
    _one_of(cfg, "data.template", ("plain", "boxed_instruction", "chat", "raw"))
    _check(cfg.data.system_prompt is None or cfg.data.template == "chat", "data.system_prompt",
           cfg.data.system_prompt, "needs data.template=chat")
    _check(cfg.data.instruction is None or cfg.data.template not in ("plain", "raw"), "data.instruction",
           cfg.data.instruction, "needs data.template=boxed_instruction or chat")
    _one_of(cfg, "data.on_bad_row", ("error", "skip"))
    _one_of(cfg, "verifier.mode", ("inline", "process", "ray", "http"))
    _one_of(cfg, "verifier.answer_format", ("auto", "boxed", "answer_line", "gsm8k"))
    _one_of(cfg, "logger.wandb.mode", ("online", "offline", "disabled"))
    for backend in cfg.logger.backends:
        _check(backend in ("jsonl", "wandb", "tensorboard"), "logger.backends", backend,
               "must be one of jsonl, wandb, tensorboard")
    _check(cfg.verifier.mode != "http" or bool(cfg.verifier.url), "verifier.url", cfg.verifier.url,
           "required when verifier.mode=http")


def _validate_paths(cfg: DictConfig) -> None:
    for key in ("data.train_path", "data.eval_path"):
        path = OmegaConf.select(cfg, key)
        if path and not path.startswith("reasoning_gym:") and _looks_local(path):
            _check(Path(path).exists(), key, path, "file not found")
    from rlvr.models.catalog import is_catalog_name

    if cfg.model.path and not is_catalog_name(cfg.model.path) and _looks_local(cfg.model.path):
        _check((Path(cfg.model.path) / "config.json").exists(), "model.path", cfg.model.path,
               "not an HF model directory (no config.json)")


def _validate_rewards(cfg: DictConfig) -> None:
    """The reward kind; ``algorithm.reward=custom`` needs ``verifier.custom_reward``, and each function must
    import and take TRL's keywords: checked here, at start-up, rather than at the first step's rewards."""
    _one_of(cfg, "algorithm.reward", ("correctness", "plus_minus", "format", "custom"))
    spec, weights = cfg.verifier.custom_reward, cfg.verifier.reward_weights
    value = OmegaConf.to_container(spec) if OmegaConf.is_config(spec) else spec
    custom = cfg.algorithm.reward == "custom"
    _check(custom or value is None, "verifier.custom_reward", value, "is only used with algorithm.reward=custom: "
           "set algorithm.reward=custom (or drop verifier.custom_reward)")
    _check(weights is None or value is not None, "verifier.reward_weights", weights,
           "needs verifier.custom_reward (one weight per reward function)")
    if not custom:
        return
    _check(bool(value), "verifier.custom_reward", value,
           "algorithm.reward=custom needs it: 'pkg.module:function' or a list of them")
    _check(isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
           "verifier.custom_reward", value, "must be 'pkg.module:function' or a list of such strings")
    from rlvr.verifier.rewards import load_reward_functions

    try:
        load_reward_functions(value, None if weights is None else list(weights))
    except ValueError as err:
        key = "verifier.reward_weights" if "weight" in str(err).split(":")[0] else "verifier.custom_reward"
        _check(False, key, weights if key.endswith("weights") else value, str(err))


_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _looks_local(path: str) -> bool:
    """Hub names look like 'org/name' (dots allowed: 'Qwen/Qwen2.5-Math-1.5B'); a path that exists, is
    absolute, starts with '.' or '~', has a data-file suffix, or is not org/name is local."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute() or path.startswith((".", "~")) or p.suffix.lower() in (".jsonl", ".json",
                                                                                              ".parquet"):
        return True
    return not _HUB_NAME.fullmatch(path)



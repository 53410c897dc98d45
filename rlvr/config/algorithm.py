"""The `algorithm` block of the config: which advantage estimator and objective, with their settings,
and the checks that need the algorithm registry.

The defaults ARE the GRPO preset (the default job's algorithm), so each `configs/algorithm/<key>.yaml`
lists only what its algorithm changes: the presets' differences are those files, read side by side
(`tail -n +1 configs/algorithm/*.yaml`). `objective_params` / `advantage_params` default to `{}` all the
same, because Hydra merges dicts: a default key there would leak into every preset (the registry fills
in each objective's own defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from rlvr.config.checks import ConfigError, _check


@dataclass
class CorrectionConfig:
    """Train-inference mismatch correction (ALGORITHMS.md section 5). A param left None takes the mode's
    default (tis/seq_tis: clip 2.0; mis: low 0.5, high 2.0, level token; icepop: low 0.5, high 5.0)."""

    mode: str = "none"                 # none | tis | seq_tis | mis | icepop
    clip: Optional[float] = None       # tis, seq_tis
    low: Optional[float] = None        # mis, icepop
    high: Optional[float] = None       # mis, icepop
    level: Optional[str] = None        # mis: token | sequence


@dataclass
class OverlongConfig:
    """DAPO's soft overlong punishment over the last `cache_len` tokens before `rollout.max_tokens`."""

    enabled: bool = False
    cache_len: Optional[int] = 0       # tokens; None: cache_frac of rollout.max_tokens
    cache_frac: float = 0.2


@dataclass
class DCMDPConfig:
    """DCMDP's dual ascent on its multiplier lambda (`rlvr.algorithms.DCMDPController`)."""

    enabled: bool = False
    lambda_init: float = 0.1
    eta: float = 1.0
    tolerance: float = 0.004
    lambda_min: float = 0.0
    lambda_max: float = 1.0


@dataclass
class CriticConfig:
    """PPO's value model (advantage gae only); changing it under another advantage is an error."""

    lr: Optional[float] = None         # None: optim.lr
    clip_eps: float = 0.2              # value clipping (0: off)


@dataclass
class AlgorithmConfig:
    name: str = "grpo"
    advantage: str = "grpo"
    advantage_params: Dict[str, Any] = field(default_factory=dict)
    objective: str = "grpo"
    objective_params: Dict[str, Any] = field(default_factory=dict)
    loss_agg_mode: Optional[str] = None   # None: the objective's own
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    reward: str = "correctness"        # correctness | plus_minus | format | custom
    dynamic_sampling: bool = False
    max_gen_batches: int = 3
    overlong: OverlongConfig = field(default_factory=OverlongConfig)
    dcmdp: DCMDPConfig = field(default_factory=DCMDPConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    ppo_epochs: int = 1
    mini_batches: int = 2
    plugins: List[str] = field(default_factory=list)


CRITIC_DEFAULTS = {"lr": None, "clip_eps": 0.2}  # lr None: optim.lr (the fields of CriticConfig)
CORRECTION_PARAMS = ("clip", "low", "high", "level")


def _get(block: Any, key: str) -> Any:
    # Transitional: runtime code receives the typed dataclasses, older callers plain dicts.
    return block[key] if isinstance(block, Mapping) else getattr(block, key)


def correction_params(correction: Any) -> dict:
    """The `algorithm.correction` block as the dict `rlvr.algorithms` takes: the mode and the params set."""
    params = {k: _get(correction, k) for k in CORRECTION_PARAMS if _get(correction, k) is not None}
    return {"mode": _get(correction, "mode"), **params}


BLOCKS = {"correction": CorrectionConfig, "overlong": OverlongConfig, "dcmdp": DCMDPConfig, "critic": CriticConfig}


def _check_known_keys(algo: DictConfig) -> None:
    """`+algorithm.x.y=v` adds a key Hydra's struct mode lets through (and `to_object` would drop): reject it."""
    for name, schema in {"": AlgorithmConfig, **BLOCKS}.items():
        node = algo[name] if name else algo
        valid = [f.name for f in fields(schema)]
        for key in node:
            where = f"algorithm.{name}.{key}" if name else f"algorithm.{key}"
            _check(key in valid, where, node[key], f"unknown key; valid: {', '.join(valid)}")


def _validate_algorithm(cfg: DictConfig) -> None:
    from rlvr import algorithms

    algo = cfg.algorithm
    _check_known_keys(algo)
    _check(algo.objective in algorithms.OBJECTIVES, "algorithm.objective", algo.objective,
           f"unknown objective; valid: {', '.join(sorted(algorithms.OBJECTIVES))}")
    _check(algo.advantage in algorithms.ADVANTAGES, "algorithm.advantage", algo.advantage,
           f"unknown advantage; valid: {', '.join(sorted(algorithms.ADVANTAGES))}")
    try:
        resolve_critic(algo, cfg.optim)
    except ValueError as err:
        raise ConfigError(f"config error: algorithm.critic: {err}") from None
    if algo.loss_agg_mode is not None:
        _check(algo.loss_agg_mode in algorithms.AGG_MODES, "algorithm.loss_agg_mode", algo.loss_agg_mode,
               f"must be one of {', '.join(algorithms.AGG_MODES)}")
    params = dict(OmegaConf.to_container(algo.objective_params, resolve=True))
    if algo.dcmdp.enabled:
        params.update(dcmdp_lambda=algo.dcmdp.lambda_init, tolerance=algo.dcmdp.tolerance)
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
    try:
        algorithms.resolve_correction(correction_params(algo.correction))
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"config error: algorithm.correction: {err}") from None
    if algo.overlong.enabled:
        cache_len = overlong_cache_len(algo.overlong, cfg.rollout.max_tokens)
        _check(0 < cache_len <= cfg.rollout.max_tokens, "algorithm.overlong.cache_len", cache_len,
               f"must be in (0, rollout.max_tokens={cfg.rollout.max_tokens}]")
    if algo.dcmdp.enabled:
        try:
            algorithms.DCMDPController.from_config(algo.dcmdp)
        except ValueError as err:
            raise ConfigError(f"config error: algorithm.dcmdp: {err}") from None


def resolve_critic(algo: Any, optim: Any) -> dict | None:
    """The value model's settings (`algorithm.critic`, with lr None -> `optim.lr`) when the advantage is
    GAE, else None. `algo` / `optim` are the `algorithm` / `optim` config blocks."""
    from rlvr import algorithms

    advantage = _get(algo, "advantage")
    uses_gae = algorithms.ADVANTAGES[advantage].fn is algorithms.ADVANTAGES["gae"].fn
    block = _get(algo, "critic")
    out = {k: _get(block, k) for k in CRITIC_DEFAULTS}
    if not uses_gae:
        if out != CRITIC_DEFAULTS:
            raise ValueError(f"set, but advantage {advantage!r} uses no critic (only gae does)")
        return None
    out["lr"] = _get(optim, "lr") if out["lr"] is None else out["lr"]
    if not (isinstance(out["lr"], (int, float)) and out["lr"] > 0):
        raise ValueError(f"lr={out['lr']!r} must be > 0")
    if not (isinstance(out["clip_eps"], (int, float)) and out["clip_eps"] >= 0):
        raise ValueError(f"clip_eps={out['clip_eps']!r} must be >= 0 (0: no value clipping)")
    return out


def overlong_cache_len(overlong: Any, max_tokens: int) -> int:
    """DAPO's overlong cache in tokens: `cache_len`, or `cache_frac` of the max response length."""
    from rlvr.algorithms import overlong_cache_tokens

    return overlong_cache_tokens(_get(overlong, "cache_len"), _get(overlong, "cache_frac"), max_tokens)

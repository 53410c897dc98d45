"""`rlvr eval`'s settings: the train config's own ``data`` and ``verifier`` blocks plus eval-only keys.

The ``data`` block is `rlvr.config.DataConfig`: eval reads the held-out keys (``eval_path``,
``eval_split``, ``subset``, ``format``, ``prompt_key``, ``answer_key``, ``on_bad_row``) and the prompt
keys (``template``, ``system_prompt``, ``instruction``), so the settings that trained a model evaluate it.
The short keys documented before the blocks were shared stay accepted: ``data.path`` is
``data.eval_path``, ``data.split`` is ``data.eval_split`` and ``data.limit`` is ``limit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rlvr.config import DataConfig, VerifierConfig


class EvalError(Exception):
    """A user error: bad settings, a missing model or data file. Reported as one line."""


# the short keys `rlvr eval` and `rlvr rollout` took before they shared the train config's data block
LEGACY_KEYS = {"data.path": "data.eval_path", "data.split": "data.eval_split", "data.limit": "limit"}


@dataclass
class EvalConfig:
    model: str | None = None
    data: DataConfig = field(default_factory=DataConfig)        # the same block as `rlvr train`
    verifier: VerifierConfig = field(default_factory=VerifierConfig)  # the same block as `rlvr train`
    output_dir: str | None = None          # None: outputs/eval/<model name>-<timestamp>
    limit: int | None = None               # the first N problems (data.limit is the same key)
    k: int = 4
    n: int | None = None                   # samples per problem; None: k
    temperature: float = 0.6               # 0: greedy (one generation, repeated n times)
    top_p: float = 1.0
    max_tokens: int = 1024
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    dtype: str = "float32"                 # float32 | bfloat16 | float16
    max_model_len: int | None = None
    kv_cache_gb: float = 1.0
    threads: int | None = None             # CPU threads for vLLM; None: min(cpu count, 8)
    cache_dir: str = ".cache"              # compile caches and temp files


def parse_overrides(argv: Sequence[str], command: str = "rlvr eval") -> EvalConfig:
    """``key=value`` strings -> a validated ``EvalConfig``; ``EvalError`` (one line) on any problem."""
    from omegaconf import OmegaConf

    check_dotlist(argv, command)
    return build_config(lambda: OmegaConf.from_dotlist(list(argv)))


def check_dotlist(argv: Sequence[str], command: str) -> None:
    for arg in argv:
        if "=" not in arg or arg.startswith("="):
            raise EvalError(f"expected key=value, got {arg!r} (see `{command} --help`)")


def build_config(make_overrides) -> EvalConfig:
    """``EvalConfig`` defaults merged with what ``make_overrides()`` returns (any OmegaConf-mergeable
    object), validated; ``EvalError`` (one line) on any problem."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        overrides = _rename_legacy_keys(make_overrides())
        merged = OmegaConf.merge(OmegaConf.structured(EvalConfig), overrides)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise EvalError(_omegaconf_message(err)) from None
    validate(cfg)
    return cfg


def _rename_legacy_keys(overrides):
    """``overrides`` as a DictConfig with ``LEGACY_KEYS`` moved to their keys in ``EvalConfig``."""
    from omegaconf import DictConfig, OmegaConf

    out = overrides if isinstance(overrides, DictConfig) else OmegaConf.create(overrides)
    data = out.get("data") if not OmegaConf.is_struct(out) else None
    if not isinstance(data, DictConfig):
        return out
    for old, new in LEGACY_KEYS.items():
        name = old.split(".", 1)[1]
        if name not in data:
            continue
        if OmegaConf.select(out, new) is not None:
            raise EvalError(f"{old} and {new} are the same setting: give one of them")
        value = data.pop(name)
        OmegaConf.update(out, new, value, merge=False)
    return out


def _omegaconf_message(err: Exception) -> str:
    key = getattr(err, "full_key", None) or ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if type(err).__name__ in ("ConfigKeyError", "ConfigAttributeError") and "not in" in first:
        return f"unknown key {key!r}" if key else f"unknown key ({first})"
    return f"bad value for {key}: {first}" if key else first


def validate(cfg: EvalConfig) -> None:
    """Value checks (types are OmegaConf's); fills ``n`` (None: ``k``)."""
    if not cfg.model:
        raise EvalError("model=PATH is required (an HF model directory or a run's checkpoints/step_N)")
    if not cfg.data.eval_path:
        raise EvalError("data.path=FILE is required (a jsonl/json/parquet problem file; data.eval_path is "
                        "the same key)")
    if cfg.n is None:
        cfg.n = cfg.k
    if cfg.k < 1:
        raise EvalError(f"k must be >= 1, got {cfg.k}")
    if cfg.n < cfg.k:
        raise EvalError(f"n (samples per problem) must be >= k, got n={cfg.n} k={cfg.k}")
    if cfg.temperature < 0:
        raise EvalError(f"temperature must be >= 0, got {cfg.temperature}")
    if not 0 < cfg.top_p <= 1:
        raise EvalError(f"top_p must be in (0, 1], got {cfg.top_p}")
    if cfg.max_tokens < 1:
        raise EvalError(f"max_tokens must be >= 1, got {cfg.max_tokens}")
    if cfg.limit is not None and cfg.limit < 1:
        raise EvalError(f"limit (data.limit) must be >= 1, got {cfg.limit}")
    _validate_blocks(cfg)


def _validate_blocks(cfg: EvalConfig) -> None:
    from rlvr.data import FORMATS, PROMPT_TEMPLATES
    from rlvr.verifier import ANSWER_FORMATS

    checks = [("data.format", cfg.data.format, FORMATS), ("data.template", cfg.data.template, PROMPT_TEMPLATES),
              ("data.on_bad_row", cfg.data.on_bad_row, ("error", "skip")),
              ("verifier.mode", cfg.verifier.mode, ("inline", "process", "http")),
              ("verifier.answer_format", cfg.verifier.answer_format, ANSWER_FORMATS)]
    for key, value, allowed in checks:
        if value not in allowed:
            raise EvalError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    if cfg.data.system_prompt is not None and cfg.data.template != "chat":
        raise EvalError("data.system_prompt needs data.template=chat")
    if cfg.data.instruction is not None and cfg.data.template == "plain":
        raise EvalError("data.instruction needs data.template=boxed_instruction or chat")
    if cfg.verifier.workers < 1 or cfg.verifier.timeout_s <= 0:
        raise EvalError("verifier.workers must be >= 1 and verifier.timeout_s > 0")
    if cfg.verifier.mode == "http" and not cfg.verifier.url:
        raise EvalError("verifier.url is required with verifier.mode=http")

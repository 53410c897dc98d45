"""Turning verdicts into scalar rewards.

Kinds:

- ``correctness``: 1.0 if correct else 0.0.
- ``plus_minus``: +1.0 if correct else -1.0 (DAPO's rule-based reward).
- ``format``: correctness plus ``format_weight`` when the response states an answer in an accepted
  format (``reason`` is ``correct`` or ``wrong``): 1 + w, w, or 0.
- ``custom``: ``custom="pkg.module:function"``, called as ``fn(results, responses)`` and returning
  one finite float per input.

``shaped_rewards`` is the run's reward: one of these kinds plus, when enabled, DAPO's soft overlong
punishment (``rlvr.algorithms.overlong_penalty``). Generated and offline samples both go through it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence

from .result import CORRECT, WRONG, VerifyResult

REWARD_KINDS = ("correctness", "plus_minus", "format", "custom")


def load_callable(path: str) -> Callable:
    """Import ``"pkg.module:function"`` (or ``"pkg.module.function"``)."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ValueError(f"custom reward must look like 'pkg.module:function', got {path!r}")
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path!r} is not callable")
    return obj


def compute_rewards(
    results: Sequence[VerifyResult],
    responses: Sequence[str],
    kind: str = "correctness",
    format_weight: float = 0.1,
    custom: str | Callable | None = None,
) -> list[float]:
    """One float per result, in order (see module doc for the kinds)."""
    if len(results) != len(responses):
        raise ValueError(f"{len(results)} results but {len(responses)} responses")
    if kind == "correctness":
        return [1.0 if r.reason == CORRECT else 0.0 for r in results]
    if kind == "plus_minus":
        return [1.0 if r.reason == CORRECT else -1.0 for r in results]
    if kind == "format":
        w = float(format_weight)
        return [(1.0 if r.reason == CORRECT else 0.0) + (w if r.reason in (CORRECT, WRONG) else 0.0) for r in results]
    if kind == "custom":
        if custom is None:
            raise ValueError("kind='custom' needs custom='pkg.module:function'")
        fn = load_callable(custom) if isinstance(custom, str) else custom
        out = [float(x) for x in fn(list(results), list(responses))]
        if len(out) != len(results):
            raise ValueError(f"custom reward returned {len(out)} values for {len(results)} inputs")
        if not all(math.isfinite(x) for x in out):
            raise ValueError("custom reward returned a non-finite value")
        return out
    raise ValueError(f"reward kind must be one of {REWARD_KINDS}, got {kind!r}")


def shaped_rewards(
    results: Sequence[VerifyResult],
    responses: Sequence[str],
    lengths: Sequence[int],
    *,
    kind: str,
    format_weight: float,
    custom: str | Callable | None,
    max_tokens: int,
    overlong_cache_len: int | None = None,
) -> list[float]:
    """The training reward of each response: ``compute_rewards`` plus DAPO's overlong penalty of its
    token count (``lengths``) against ``max_tokens`` when ``overlong_cache_len`` is set (None: no
    penalty). The penalty is computed in float32 by ``overlong_penalty`` and added to each reward."""
    rewards = compute_rewards(results, responses, kind=kind, format_weight=format_weight, custom=custom)
    if overlong_cache_len is not None:
        import torch  # only runs with overlong shaping pay for torch

        from rlvr.algorithms import overlong_penalty

        penalty = overlong_penalty(torch.tensor(list(lengths), dtype=torch.float32), max_tokens, overlong_cache_len)
        rewards = [r + p for r, p in zip(rewards, penalty.tolist())]
    return [float(r) for r in rewards]


def reward_settings(cfg) -> dict:
    """``shaped_rewards``' keywords from a run's typed ``Config`` (read by attribute): the reward kind
    (``algorithm.reward``), ``verifier.format_weight`` / ``custom_reward``, ``rollout.max_tokens`` and,
    when ``algorithm.overlong.enabled``, the overlong cache length."""
    from rlvr.config import overlong_cache_len

    max_tokens = cfg.rollout.max_tokens
    overlong = cfg.algorithm.overlong
    return {"kind": cfg.algorithm.reward, "format_weight": cfg.verifier.format_weight,
            "custom": cfg.verifier.custom_reward, "max_tokens": max_tokens,
            "overlong_cache_len": overlong_cache_len(overlong, max_tokens) if overlong.enabled else None}

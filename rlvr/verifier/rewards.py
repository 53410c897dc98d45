"""Turning verdicts into scalar rewards.

Kinds:

- ``correctness``: 1.0 if correct else 0.0.
- ``plus_minus``: +1.0 if correct else -1.0 (DAPO's rule-based reward).
- ``format``: correctness plus ``format_weight`` when the response states an answer in an accepted
  format (``reason`` is ``correct`` or ``wrong``): 1 + w, w, or 0.
- ``custom``: one or more reward functions written as for TRL's ``GRPOTrainer`` (see ``custom_rewards``):
  ``fn(prompts, completions, **kwargs) -> list[float | None]``, combined with weights.

``shaped_rewards`` is the run's reward: one of these kinds plus, when enabled, DAPO's soft overlong
punishment (``rlvr.algorithms.overlong_penalty``). Generated and offline samples both go through it.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .result import CORRECT, WRONG, VerifyResult

REWARD_KINDS = ("correctness", "plus_minus", "format", "custom")
# the keywords every reward function may receive besides the data set's columns
RESERVED = ("prompts", "completions", "completion_ids", "verdicts")
FIX = "write it as fn(prompts, completions, **kwargs) -> list[float | None] (TRL's reward-function convention)"


def load_callable(path: str) -> Callable:
    """Import ``"pkg.module:function"`` (or ``"pkg.module.function"``). The working directory is searched
    too, as ``python -m`` would, so a reward module beside the user's config imports under ``rlvr train``."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ValueError(f"custom reward must look like 'pkg.module:function', got {path!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path!r} is not callable")
    return obj


@dataclass(frozen=True)
class RewardFunction:
    """One reward function of a run: its name (the metric ``rollout/reward/<name>``), the callable, its
    weight in the sum, and the keywords it accepts (None: it takes ``**kwargs``, so it gets them all)."""

    name: str
    fn: Callable
    weight: float = 1.0
    accepts: frozenset | None = None


def load_reward_functions(spec, weights: Sequence[float] | None = None) -> list[RewardFunction]:
    """``spec``: ``"pkg.module:function"``, a callable, or a list of them (``verifier.custom_reward``);
    ``weights``: one float per function (``verifier.reward_weights``; None: all 1.0). Raises ValueError
    with one line naming the function and the fix when one cannot be imported or cannot take TRL's
    keywords."""
    if isinstance(spec, RewardFunction) or isinstance(spec, str) or callable(spec):
        spec = [spec]
    specs = list(spec or [])
    if not specs:
        raise ValueError("no reward function: set verifier.custom_reward='pkg.module:function' (or a list)")
    if weights is None:  # a loaded RewardFunction keeps its own weight
        weights = [s.weight if isinstance(s, RewardFunction) else 1.0 for s in specs]
    weights = [float(w) for w in weights]
    if len(weights) != len(specs):
        raise ValueError(f"{len(weights)} reward weights for {len(specs)} reward functions: give one weight each")
    funcs = [_reward_function(s, w) for s, w in zip(specs, weights)]
    names = [f.name for f in funcs]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"two reward functions are named {name!r}: their metrics would clash; rename one")
    return funcs


def _reward_function(spec, weight: float) -> RewardFunction:
    if isinstance(spec, RewardFunction):
        return RewardFunction(spec.name, spec.fn, weight, spec.accepts)
    label = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
    if isinstance(spec, str):
        try:
            fn = load_callable(spec)
        except (ImportError, AttributeError, TypeError) as err:
            raise ValueError(f"reward function {spec!r} cannot be imported ({type(err).__name__}: {err}): make "
                             "'pkg.module' importable from the working directory (or installed) and name an "
                             "existing function after the colon") from None
    else:
        fn = spec
    name = getattr(fn, "__name__", None) or str(label).rpartition(":")[2].rpartition(".")[2]
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return RewardFunction(name, fn, weight, None)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return RewardFunction(name, fn, weight, None)
    accepts = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    if "completions" not in accepts:
        old = " (rlvr's old fn(results, responses) convention: results are now `verdicts`)" \
            if {"results", "responses"} <= accepts else ""
        raise ValueError(f"reward function {label!r} takes no `completions` keyword{old}: {FIX}")
    return RewardFunction(name, fn, weight, accepts)


def custom_rewards(funcs: Sequence[RewardFunction], *, prompts: Sequence[str], completions: Sequence[str],
                   verdicts: Sequence[VerifyResult], columns: Mapping[str, Sequence] | None = None,
                   completion_ids: Sequence[Sequence[int]] | None = None,
                   ) -> tuple[list[float], dict[str, list[float]]]:
    """TRL's call: each function gets ``prompts`` and ``completions`` (one string per completion; a
    prompt repeats for each of its samples), every data set column by name (``answer`` included, one
    value per completion), ``completion_ids`` and the verifier's ``verdicts`` (``VerifyResult``s), all
    as keywords; a function without ``**kwargs`` gets only the keywords it names. Each returns one float
    or None per completion. As in TRL, None (or NaN) is missing: that function is left out of the
    completion's weighted sum (a completion every function skips gets 0.0).

    Returns (the weighted sums, each function's values by name with NaN for missing)."""
    n = len(completions)
    columns = dict(columns or {})
    clash = sorted(set(columns) & set(RESERVED))
    if clash:
        raise ValueError(f"data set column {clash[0]!r} clashes with a reward-function keyword "
                         f"({', '.join(RESERVED)}): rename the column")
    kwargs = {"prompts": list(prompts), "completions": list(completions), "verdicts": list(verdicts),
              **({"completion_ids": list(completion_ids)} if completion_ids is not None else {}),
              **{k: list(v) for k, v in columns.items()}}
    if any(len(v) != n for v in kwargs.values()):
        raise ValueError(f"reward inputs disagree in length: {({k: len(v) for k, v in kwargs.items()})}")
    parts = {f.name: _call(f, kwargs, n) for f in funcs}
    totals = [0.0] * n
    for f in funcs:
        for i, value in enumerate(parts[f.name]):
            if not math.isnan(value):
                totals[i] += f.weight * value
    return totals, parts


def reward_inputs(problems: Sequence[Mapping], prompts: Sequence[str] | None = None,
                  completion_ids: Sequence[Sequence[int]] | None = None) -> dict:
    """``custom_rewards``' ``prompts``, ``columns`` and ``completion_ids`` from each completion's problem
    dict: the prompt text (``prompts``; None: the problem's own ``prompt``) and every other field by name
    (``answer`` included; None where a problem lacks it)."""
    keys = list(dict.fromkeys(k for p in problems for k in p if k != "prompt"))
    return {"prompts": [p["prompt"] for p in problems] if prompts is None else list(prompts),
            "columns": {k: [p.get(k) for p in problems] for k in keys},
            **({"completion_ids": [list(ids) for ids in completion_ids]} if completion_ids is not None else {})}


def part_means(parts: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each custom reward function's mean over the completions it scored (None/NaN, TRL's "missing", left
    out; a function that scored none is left out)."""
    out = {}
    for name, values in parts.items():
        scored = [v for v in values if not math.isnan(v)]
        if scored:
            out[name] = sum(scored) / len(scored)
    return out


def _call(f: RewardFunction, kwargs: dict, n: int) -> list[float]:
    """One function's values (NaN for None), checked: one number per completion."""
    args = kwargs if f.accepts is None else {k: v for k, v in kwargs.items() if k in f.accepts}
    try:
        out = f.fn(**args)
    except TypeError as err:
        if f.accepts is not None and "argument" in str(err):
            raise ValueError(f"reward function {f.name!r} cannot be called with the keywords "
                             f"{', '.join(sorted(kwargs))}: {err}; {FIX}") from err
        raise
    if isinstance(out, (str, bytes)) or not (isinstance(out, Sequence) or hasattr(out, "tolist")):
        raise ValueError(f"reward function {f.name!r} returned {type(out).__name__}, not a list: return one "
                         f"float (or None) per completion")
    values = out.tolist() if hasattr(out, "tolist") else list(out)  # numpy / torch: plain floats
    if len(values) != n:
        raise ValueError(f"reward function {f.name!r} returned {len(values)} values for {n} completions: "
                         f"return one float (or None) per completion")
    for v in values:
        if v is not None and not isinstance(v, numbers.Real):
            raise ValueError(f"reward function {f.name!r} returned {v!r} ({type(v).__name__}): return one "
                             f"float (or None) per completion")
    floats = [math.nan if v is None else float(v) for v in values]
    if any(math.isinf(v) for v in floats):
        raise ValueError(f"reward function {f.name!r} returned an infinite value: return finite floats (or None)")
    return floats


def compute_rewards(
    results: Sequence[VerifyResult],
    responses: Sequence[str],
    kind: str = "correctness",
    format_weight: float = 0.1,
    custom=None,
    *,
    weights: Sequence[float] | None = None,
    prompts: Sequence[str] | None = None,
    columns: Mapping[str, Sequence] | None = None,
    completion_ids: Sequence[Sequence[int]] | None = None,
) -> list[float]:
    """One float per result, in order (see module doc for the kinds). ``custom`` (kind ``custom``) is
    what ``load_reward_functions`` takes, with ``weights``; ``prompts``, ``columns`` and
    ``completion_ids`` are what its functions receive (``custom_rewards``; prompts default to "")."""
    return score_rewards(results, responses, kind=kind, format_weight=format_weight, custom=custom, weights=weights,
                         prompts=prompts, columns=columns, completion_ids=completion_ids)[0]


def score_rewards(results: Sequence[VerifyResult], responses: Sequence[str], *, kind: str, format_weight: float,
                  custom=None, weights: Sequence[float] | None = None, prompts: Sequence[str] | None = None,
                  columns: Mapping[str, Sequence] | None = None,
                  completion_ids: Sequence[Sequence[int]] | None = None) -> tuple[list[float], dict]:
    """``compute_rewards`` and, for kind ``custom``, each function's values by name (NaN: missing)."""
    if len(results) != len(responses):
        raise ValueError(f"{len(results)} results but {len(responses)} responses")
    if kind == "correctness":
        return [1.0 if r.reason == CORRECT else 0.0 for r in results], {}
    if kind == "plus_minus":
        return [1.0 if r.reason == CORRECT else -1.0 for r in results], {}
    if kind == "format":
        w = float(format_weight)
        return [(1.0 if r.reason == CORRECT else 0.0) + (w if r.reason in (CORRECT, WRONG) else 0.0)
                for r in results], {}
    if kind == "custom":
        if custom is None:
            raise ValueError("kind='custom' needs custom='pkg.module:function'")
        funcs = load_reward_functions(custom, weights)
        return custom_rewards(funcs, prompts=[""] * len(responses) if prompts is None else prompts,
                              completions=responses, verdicts=results, columns=columns, completion_ids=completion_ids)
    raise ValueError(f"reward kind must be one of {REWARD_KINDS}, got {kind!r}")


def shaped_rewards(results: Sequence[VerifyResult], responses: Sequence[str], lengths: Sequence[int], *, kind: str,
                   format_weight: float, custom, max_tokens: int, overlong_cache_len: int | None = None,
                   **inputs) -> list[float]:
    """The training reward of each response (``shaped_score``'s first half)."""
    return shaped_score(results, responses, lengths, kind=kind, format_weight=format_weight, custom=custom,
                        max_tokens=max_tokens, overlong_cache_len=overlong_cache_len, **inputs)[0]


def shaped_score(results: Sequence[VerifyResult], responses: Sequence[str], lengths: Sequence[int], *, kind: str,
                 format_weight: float, custom, max_tokens: int, overlong_cache_len: int | None = None,
                 **inputs) -> tuple[list[float], dict]:
    """(The training reward of each response, each custom function's values by name): ``score_rewards``
    plus DAPO's overlong penalty of its token count (``lengths``) against ``max_tokens`` when
    ``overlong_cache_len`` is set (None: no penalty). The penalty is computed in float32 by
    ``overlong_penalty`` and added to each reward. ``inputs``: ``prompts``, ``columns``,
    ``completion_ids`` for custom reward functions."""
    rewards, parts = score_rewards(results, responses, kind=kind, format_weight=format_weight, custom=custom,
                                   **inputs)
    if overlong_cache_len is not None:
        import torch  # only runs with overlong shaping pay for torch

        from rlvr.algorithms import overlong_penalty

        penalty = overlong_penalty(torch.tensor(list(lengths), dtype=torch.float32), max_tokens, overlong_cache_len)
        rewards = [r + p for r, p in zip(rewards, penalty.tolist())]
    return [float(r) for r in rewards], parts


def reward_settings(cfg) -> dict:
    """``shaped_rewards``' keywords from a run's typed ``Config`` (read by attribute): the reward kind
    (``algorithm.reward``), ``verifier.format_weight``, the reward functions of ``verifier.custom_reward``
    with ``verifier.reward_weights`` (imported here, once; None unless the kind is ``custom``),
    ``rollout.max_tokens`` and, when ``algorithm.overlong.enabled``, the overlong cache length."""
    from rlvr.algorithms import overlong_cache_tokens

    max_tokens = cfg.rollout.max_tokens
    overlong = cfg.algorithm.overlong
    kind, spec = cfg.algorithm.reward, cfg.verifier.custom_reward
    custom = load_reward_functions(spec, cfg.verifier.reward_weights) if kind == "custom" and spec else spec
    return {"kind": kind, "format_weight": cfg.verifier.format_weight, "custom": custom, "max_tokens": max_tokens,
            "overlong_cache_len": (overlong_cache_tokens(overlong.cache_len, overlong.cache_frac, max_tokens)
                                   if overlong.enabled else None)}

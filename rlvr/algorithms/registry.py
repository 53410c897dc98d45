"""Registries of advantage estimators and policy objectives.

Every objective and advantage estimator is a small function registered under a key with its default
parameters. ``compute_policy_loss`` / ``compute_advantages`` look the key up, merge user params over the
defaults, validate them, and call the function. Unknown keys, unknown params and out-of-range params
raise ``ValueError`` naming the key and listing the valid choices.

A user's own module (``algorithm.plugins: [my_pkg.my_losses]``) registers more keys with the same
decorators; ``rlvr.plugins.import_plugins`` imports such modules (every Ray worker calls it before use).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ANCHORS = ("rollout", "recompute")
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


class UnknownKeyError(KeyError, ValueError):
    """Raised for a key that is not registered. Both a ``KeyError`` and a ``ValueError``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParamTypeError(TypeError, ValueError):
    """A param of the wrong type. Both a ``TypeError`` and a ``ValueError``."""


@dataclass(frozen=True)
class Spec:
    """One registered entry: the function, its defaults and (for objectives) aggregation and anchor."""

    key: str
    fn: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[dict[str, Any]], None] | None = None
    default_agg: str | None = None
    anchor: str | None = None
    reference: str = ""

    def resolve(self, kind: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Merge ``params`` over the defaults and validate; errors name ``kind`` and the key."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"{kind} '{self.key}': unknown param(s) {unknown}; valid params: {sorted(self.defaults)}"
            )
        merged = {**self.defaults, **params}
        if self.validate is not None:
            try:
                self.validate(merged)
            except ValueError as e:
                raise ValueError(f"{kind} '{self.key}': {e}") from None
        return merged


class Registry(Mapping[str, Spec]):
    """A read-only mapping ``key -> Spec`` plus ``register``/``unregister``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._specs: dict[str, Spec] = {}

    def __getitem__(self, key: str) -> Spec:
        try:
            return self._specs[key]
        except (KeyError, TypeError):
            raise UnknownKeyError(
                f"unknown {self.kind} '{key}'; valid keys: {sorted(self._specs)}"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {sorted(self._specs)})"

    def add(self, spec: Spec, override: bool = False) -> None:
        if not isinstance(spec.key, str) or not spec.key:
            raise ValueError(f"{self.kind} key must be a non-empty string, got {spec.key!r}")
        if spec.key in self._specs and not override:
            raise ValueError(
                f"{self.kind} '{spec.key}' is already registered; pass override=True to replace it"
            )
        self._specs[spec.key] = spec

    def unregister(self, key: str) -> Spec:
        """Remove and return a key (tests, plugin reloads)."""
        spec = self[key]
        del self._specs[key]
        return spec


OBJECTIVES = Registry("objective")
ADVANTAGES = Registry("advantage")


def register_objective(
    key: str,
    *,
    default_agg: str = "token-mean",
    anchor: str = "recompute",
    defaults: Mapping[str, Any] | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
    reference: str = "",
    override: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn(inp: PolicyInputs, **params)`` as objective ``key``.

    ``fn`` returns the per-token policy loss ``[B, T]`` (to be minimised; masking and aggregation are
    done by the caller), or ``(per_token_loss, metrics)``. Extra unweighted terms (penalties) are added
    with ``inp.add_term``. The KL to the reference is the loss pipeline's: declare ``kl_coef`` / ``kl_type``
    in ``defaults`` (``objectives.KL_DEFAULTS``) and the pipeline adds ``kl_coef * KL_est`` per token; ``fn``
    does not receive them. ``anchor`` chooses the log-probs the
    ratio ``inp.ratio`` is taken against: ``rollout`` (mu, vLLM's) or ``recompute`` (pi_old, the
    trainer's). ``validate(params)`` raises ``ValueError`` for out-of-range values.
    """
    if default_agg not in AGG_MODES:
        raise ValueError(f"objective '{key}': default_agg {default_agg!r} not in {list(AGG_MODES)}")
    if anchor not in ANCHORS:
        raise ValueError(f"objective '{key}': anchor {anchor!r} not in {list(ANCHORS)}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = Spec(key, fn, dict(defaults or {}), validate, default_agg, anchor, reference)
        OBJECTIVES.add(spec, override=override)
        return fn

    return deco


def register_advantage(
    key: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
    reference: str = "",
    override: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn(rewards, group_index, *, mask, old_logprobs, ref_logprobs, **params)``.

    ``fn`` returns advantages ``[N]`` (per sequence) or ``[N, T]`` (per token).
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        ADVANTAGES.add(Spec(key, fn, dict(defaults or {}), validate, reference=reference), override=override)
        return fn

    return deco


def objective_info(name: str) -> tuple[str, str, dict[str, Any]]:
    """``(default_agg, anchor, defaults)`` of a registered objective."""
    spec = OBJECTIVES[name]
    return spec.default_agg, spec.anchor, dict(spec.defaults)  # type: ignore[return-value]


def resolve_objective_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults merged with ``params`` and validated (use at config time to fail fast)."""
    return OBJECTIVES[name].resolve("objective", params)


def resolve_advantage_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return ADVANTAGES[name].resolve("advantage", params)


def needs_reference(
    objective: str,
    objective_params: Mapping[str, Any] | None = None,
    advantage: str | None = None,
    advantage_params: Mapping[str, Any] | None = None,
) -> bool:
    """True when a KL term (``kl_coef > 0``) is configured in the objective or the advantage."""
    merged = resolve_objective_params(objective, objective_params)
    if float(merged.get("kl_coef") or 0.0) > 0.0:
        return True
    if advantage is not None:
        adv = resolve_advantage_params(advantage, advantage_params)
        if float(adv.get("kl_coef") or 0.0) > 0.0:
            return True
    return False


# --- small validation helpers shared by the built-in entries -------------------------------------


def check_number(params: Mapping[str, Any], name: str, *, ge=None, gt=None, lt=None, le=None,
                 allow_none: bool = False) -> None:
    v = params[name]
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ParamTypeError(f"param '{name}' must be a number, got {v!r}")
    bounds = [(ge, lambda a, b: a >= b, ">="), (gt, lambda a, b: a > b, ">"),
              (le, lambda a, b: a <= b, "<="), (lt, lambda a, b: a < b, "<")]
    for bound, ok, sym in bounds:
        if bound is not None and not ok(v, bound):
            raise ValueError(f"param '{name}' must be {sym} {bound}, got {v!r}")


def check_choice(params: Mapping[str, Any], name: str, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if params[name] not in choices:
        raise ValueError(f"param '{name}' must be one of {list(choices)}, got {params[name]!r}")


def check_bool(params: Mapping[str, Any], name: str) -> None:
    if not isinstance(params[name], bool):
        raise ParamTypeError(f"param '{name}' must be a bool, got {params[name]!r}")

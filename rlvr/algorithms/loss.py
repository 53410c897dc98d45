"""``compute_policy_loss``: the loss pipeline, the one entry point the trainer calls (ALGORITHMS.md 1, 2, 5).

Flow: look up the objective -> merge and validate params -> build ``PolicyInputs`` (fp32, masked
positions sanitised, ratio against the objective's anchor with log r clamped to [-20, 20]) -> the
objective returns its per-token policy loss -> the mismatch correction weights it (recompute-anchored
objectives only) -> unweighted extra terms (the objective's penalties, then ``kl_coef * KL_est(pi_theta ||
pi_ref)``, which this pipeline adds for every objective declaring ``kl_coef`` / ``kl_type``) are added ->
aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .aggregation import aggregate_loss, masked_max, masked_mean, masked_min
from .corrections import compute_correction, resolve_correction
from .kl import LOG_RATIO_CLAMP, kl_estimate
from .registry import OBJECTIVES, Spec

KL_PARAMS = ("kl_coef", "kl_type")  # an objective's params that the pipeline, not the objective, consumes


@dataclass
class PolicyInputs:
    """What an objective function receives. All tensors ``[B, T]``, fp32 (or wider), zero where masked.

    ``logprobs`` carries the gradient; the others are detached. ``log_ratio`` = clamp(log pi_theta -
    log anchor, -20, 20) with gradient; ``ratio`` = exp(log_ratio). ``anchor`` is ``rollout`` (mu) or
    ``recompute`` (pi_old). ``advantages`` are broadcast to ``[B, T]``.
    """

    key: str
    logprobs: torch.Tensor
    old_logprobs: torch.Tensor | None
    rollout_logprobs: torch.Tensor | None
    ref_logprobs: torch.Tensor | None
    advantages: torch.Tensor
    mask: torch.Tensor  # bool
    anchor: str
    anchor_logprobs: torch.Tensor
    log_ratio: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    term_metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def ratio(self) -> torch.Tensor:
        return torch.exp(self.log_ratio)

    @property
    def fmask(self) -> torch.Tensor:
        return self.mask.to(self.logprobs.dtype)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Masked mean over all tokens (detached), for metrics."""
        return masked_mean(x.detach().to(self.logprobs.dtype), self.mask)

    def require(self, name: str) -> torch.Tensor:
        t = getattr(self, name)
        if t is None:
            raise ValueError(f"objective '{self.key}' needs {name}")
        return t

    def add_term(self, name: str, per_token: torch.Tensor) -> None:
        """Add an unweighted per-token term to the loss (not touched by the mismatch correction)."""
        self.terms[name] = self.terms[name] + per_token if name in self.terms else per_token
        self.term_metrics[name] = self.mean(self.terms[name])


def add_kl_term(inp: PolicyInputs, kl_coef: float, kl_type: str = "k3") -> None:
    """Add ``kl_coef * KL_est(pi_theta || pi_ref)`` per token when ``kl_coef > 0`` (logs ``kl_ref``)."""
    if not kl_coef:
        return
    ref = inp.require("ref_logprobs")
    kl = kl_estimate(inp.logprobs, ref, kl_type)
    inp.term_metrics["kl_ref"] = inp.mean(kl)
    inp.add_term("kl_loss", kl_coef * kl)


def _prep(x: torch.Tensor | None, mask: torch.Tensor, dtype, name: str, detach: bool = True):
    if x is None:
        return None
    if not isinstance(x, torch.Tensor) or x.shape != mask.shape:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a [B, T] tensor like mask {tuple(mask.shape)}, got {shape}")
    x = x.detach() if detach else x
    return torch.where(mask, x.to(dtype), torch.zeros((), dtype=dtype, device=x.device))


def _to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    keys = [k for k, v in metrics.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    if keys:
        vals = torch.stack([metrics[k].detach().reshape(()).to(torch.float64 if metrics[k].device.type == "cpu"
                                                                else torch.float32) for k in keys])
        out.update(zip(keys, vals.tolist()))
    return out


def _broadcast_advantages(advantages, mask: torch.Tensor, mask_b: torch.Tensor, dtype) -> torch.Tensor:
    adv = torch.as_tensor(advantages, device=mask.device).detach().to(dtype)
    if adv.dim() == 1 and adv.shape[0] == mask.shape[0]:
        adv = adv.unsqueeze(-1).expand_as(mask_b)
    elif adv.dim() == 2 and adv.shape == (mask.shape[0], 1):
        adv = adv.expand_as(mask_b)
    elif adv.shape != mask.shape:
        raise ValueError(f"advantages must be [B] or [B, T] for mask {tuple(mask.shape)}, got {tuple(adv.shape)}")
    return torch.where(mask_b, adv, torch.zeros((), dtype=dtype, device=adv.device))


def _policy_inputs(name: str, spec: Spec, logprobs, old_logprobs, rollout_logprobs, ref_logprobs, advantages,
                   mask) -> PolicyInputs:
    """fp32 (or wider) tensors, zero where masked, and the ratio against the objective's anchor."""
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError(f"objective '{name}': mask must be a [B, T] tensor")
    mask_b = mask > 0 if mask.dtype != torch.bool else mask
    dtype = torch.promote_types(logprobs.dtype, torch.float32)
    lp = _prep(logprobs, mask_b, dtype, "logprobs", detach=False)
    old = _prep(old_logprobs, mask_b, dtype, "old_logprobs")
    mu = _prep(rollout_logprobs, mask_b, dtype, "rollout_logprobs")
    ref = _prep(ref_logprobs, mask_b, dtype, "ref_logprobs")
    adv = _broadcast_advantages(advantages, mask, mask_b, dtype)
    anchor_lp = old if spec.anchor == "recompute" else mu
    if anchor_lp is None:
        which = "old_logprobs (pi_old)" if spec.anchor == "recompute" else "rollout_logprobs (mu)"
        raise ValueError(f"objective '{name}' is anchored to {spec.anchor!r} and needs {which}")
    log_ratio = (lp - anchor_lp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return PolicyInputs(name, lp, old, mu, ref, adv, mask_b, spec.anchor, anchor_lp, log_ratio)


def _metrics(inp: PolicyInputs, corr_metrics: dict, obj_metrics: dict) -> dict[str, float]:
    """Ratio statistics, KL to the reference, the extra terms', the correction's and the objective's."""
    with torch.no_grad():
        lr, mask_b, ref = inp.log_ratio.detach(), inp.mask, inp.ref_logprobs
        metrics: dict[str, Any] = {
            "ratio_mean": masked_mean(lr.exp(), mask_b),
            "ratio_max": masked_max(lr.exp(), mask_b),
            "ratio_min": masked_min(lr.exp(), mask_b),
            "approx_kl": masked_mean(0.5 * lr.square(), mask_b),
        }
        if ref is not None and "kl_ref" not in inp.term_metrics:
            metrics["kl_ref"] = masked_mean(kl_estimate(inp.logprobs.detach(), ref, "k3"), mask_b)
        metrics.update(inp.term_metrics)
        metrics.update(corr_metrics)
        metrics.update(obj_metrics)
    return _to_floats(metrics)


def compute_policy_loss(
    name: str,
    *,
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    rollout_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logprobs: torch.Tensor | None = None,
    loss_agg_mode: str | None = None,
    horizon: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
    **params: Any,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Scalar policy loss (to minimise) and a dict of float metrics.

    Tensors are ``[B, T]``; ``advantages`` ``[B]`` or ``[B, T]``. ``params`` are the objective's params
    (see ``objective_info(name)``) plus ``correction`` (section 5; only for ``recompute``-anchored
    objectives: a rollout-anchored objective already takes its ratio against mu, so a correction other
    than ``none`` raises ``ValueError``). ``loss_agg_mode=None`` uses the objective's default;
    ``horizon`` (H) is used by ``seq-mean-token-sum-norm`` and defaults to ``T`` for a local call; with
    global counts it is required (pass the max response length). ``num_tokens`` / ``num_seqs`` are the global counts of
    the mini-batch (see ``aggregate_loss``).
    """
    spec = OBJECTIVES[name]
    correction = resolve_correction(params.pop("correction", None))
    resolved = spec.resolve("objective", params)
    kl = {k: resolved.pop(k) for k in KL_PARAMS if k in resolved}
    if spec.anchor == "rollout" and correction["mode"] != "none":
        raise ValueError(
            f"objective '{name}' is anchored to the rollout policy mu (ratio pi/mu), so the mismatch "
            f"correction {correction['mode']!r} does not apply; use correction mode 'none'"
        )
    inp = _policy_inputs(name, spec, logprobs, old_logprobs, rollout_logprobs, ref_logprobs, advantages, mask)

    out = spec.fn(inp, **resolved)
    pg_loss, obj_metrics = out if isinstance(out, tuple) else (out, {})
    if pg_loss.shape != inp.mask.shape:
        raise ValueError(f"objective '{name}' returned shape {tuple(pg_loss.shape)}, expected {tuple(mask.shape)}")
    add_kl_term(inp, kl.get("kl_coef", 0.0), kl.get("kl_type", "k3"))

    weights, corr_metrics = compute_correction(inp.old_logprobs, inp.rollout_logprobs, inp.mask, correction)
    if weights is not None:
        pg_loss = pg_loss * weights
    total = pg_loss
    for term in inp.terms.values():
        total = total + term

    mode = loss_agg_mode or spec.default_agg
    if mode == "seq-mean-token-sum-norm" and horizon is None:
        if num_seqs is not None:
            raise ValueError(f"objective '{name}': loss_agg_mode 'seq-mean-token-sum-norm' with global counts "
                             "needs an explicit horizon (the max response length), not the micro-batch's T")
        horizon = mask.shape[-1]
    loss = aggregate_loss(total, inp.mask, mode, horizon=horizon, num_tokens=num_tokens, num_seqs=num_seqs)
    return loss, _metrics(inp, corr_metrics, obj_metrics)

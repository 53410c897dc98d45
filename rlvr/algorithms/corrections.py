"""Train-inference mismatch corrections (ALGORITHMS.md section 5).

rho = pi_old / mu per token (detached): pi_old the trainer's recomputed log-probs, mu vLLM's. The
weights multiply the per-token *policy* loss of a ``recompute``-anchored objective (not the KL or
penalty terms). Masked/zero-weighted tokens keep counting in the aggregation denominators (so that the
global-count normalisation stays exact); only their loss is zeroed.

``correction`` is a dict (or ``None`` / a mode string); a param given as None takes the mode's default:
  {"mode": "none"}
  {"mode": "tis", "clip": 2.0}                     w = min(rho, C)   (truncated IS, Yao et al. 2025)
  {"mode": "seq_tis", "clip": 2.0}                 w = min(prod_t rho, C) per sequence
  {"mode": "mis", "low": 0.5, "high": 2.0,         w = 1[a <= rho <= b] per token, or per sequence on
   "level": "token" | "sequence"}                    the geometric mean of rho
  {"mode": "icepop", "low": 0.5, "high": 5.0}      w = rho if a <= rho <= b else 0   (IcePop, Ling team)

Metrics, always (when both log-prob tensors are given): ``mismatch_abs_diff`` = mean |pi_old - mu| in
probability space, ``mismatch_kl`` = k3 estimate of KL(mu || pi_old) (tokens are sampled from mu),
``mismatch_rho_min`` / ``mismatch_rho_max``, ``correction_masked_frac`` (tokens given weight 0),
``correction_truncated_frac`` (tokens whose weight was capped), ``correction_ess`` = (sum w)^2 / (N sum w^2)
over tokens (over sequences for sequence-level modes); with mode ``none`` w = 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .aggregation import masked_max, masked_mean, masked_min
from .kl import LOG_RATIO_CLAMP
from .registry import ParamTypeError

CORRECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "tis": {"clip": 2.0},
    "seq_tis": {"clip": 2.0},
    "mis": {"low": 0.5, "high": 2.0, "level": "token"},
    "icepop": {"low": 0.5, "high": 5.0},
}
CORRECTION_MODES = tuple(CORRECTION_DEFAULTS)


def _num(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ParamTypeError(f"correction param '{name}' must be a number, got {v!r}")
    return float(v)


def resolve_correction(correction: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Validate and fill defaults: returns ``{"mode": ..., **params}``."""
    if correction is None:
        return {"mode": "none"}
    if isinstance(correction, str):
        correction = {"mode": correction}
    if not isinstance(correction, Mapping):
        raise ParamTypeError(f"correction must be a dict like {{'mode': 'tis', 'clip': 2.0}}, got {correction!r}")
    # a param set to None is unset: the mode's default (the typed config block has every param, None)
    c = {k: v for k, v in correction.items() if v is not None or k == "mode"}
    mode = c.pop("mode", "none")
    mode = "none" if mode is None else mode
    if mode not in CORRECTION_DEFAULTS:
        raise ValueError(f"unknown correction mode {mode!r}; valid modes: {list(CORRECTION_MODES)}")
    defaults = CORRECTION_DEFAULTS[mode]
    unknown = sorted(set(c) - set(defaults))
    if unknown:
        raise ValueError(f"correction '{mode}': unknown param(s) {unknown}; valid params: {sorted(defaults)}")
    out = {**defaults, **c}
    if "clip" in out and _num("clip", out["clip"]) <= 0:
        raise ValueError(f"correction '{mode}': clip must be > 0, got {out['clip']!r}")
    if "low" in out:
        lo, hi = _num("low", out["low"]), _num("high", out["high"])
        if not 0 <= lo < hi:
            raise ValueError(f"correction '{mode}': need 0 <= low < high, got low={lo}, high={hi}")
    if "level" in out and out["level"] not in ("token", "sequence"):
        raise ValueError(f"correction '{mode}': level must be 'token' or 'sequence', got {out['level']!r}")
    return {"mode": mode, **out}


def mismatch_metrics(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor,
                     mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mismatch between pi_old and mu on the sampled tokens (tensors; detached)."""
    m = mask > 0
    dtype = torch.promote_types(old_logprobs.dtype, torch.float32)
    old = torch.where(m, old_logprobs.detach().to(dtype), 0.0)
    mu = torch.where(m, rollout_logprobs.detach().to(dtype), 0.0)
    log_rho = (old - mu).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    rho = torch.exp(log_rho)
    # KL(mu || pi_old) with samples from mu, k3 estimator on x = log pi_old - log mu.
    k3 = torch.exp(log_rho) - log_rho - 1.0
    return {
        "mismatch_abs_diff": masked_mean((old.exp() - mu.exp()).abs(), m),
        "mismatch_kl": masked_mean(k3, m),
        "mismatch_rho_min": masked_min(rho, m),
        "mismatch_rho_max": masked_max(rho, m),
    }


def _ess(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    wm = torch.where(m, w, torch.zeros_like(w))
    n = m.to(w.dtype).sum()
    s1, s2 = wm.sum(), wm.square().sum()
    return torch.where(s2 > 0, s1.square() / (n * s2).clamp_min(1e-30), torch.zeros_like(s1))


def compute_correction(
    old_logprobs: torch.Tensor | None,
    rollout_logprobs: torch.Tensor | None,
    mask: torch.Tensor,
    correction: Mapping[str, Any] | str | None,
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Detached per-token weights ``[B, T]`` (``None`` for mode none) and metric tensors."""
    c = resolve_correction(correction)
    mode = c["mode"]
    m = mask > 0
    if old_logprobs is None or rollout_logprobs is None:
        if mode != "none":
            raise ValueError(f"correction '{mode}' needs both old_logprobs (pi_old) and rollout_logprobs (mu)")
        return None, {}
    metrics = mismatch_metrics(old_logprobs, rollout_logprobs, mask)
    dtype = torch.promote_types(old_logprobs.dtype, torch.float32)
    fm = m.to(dtype)
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    log_rho = torch.where(m, (old_logprobs.detach().to(dtype) - rollout_logprobs.detach().to(dtype)), zero)
    log_rho = log_rho.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    rho = log_rho.exp()
    truncated = torch.zeros_like(fm, dtype=torch.bool)
    seq_level = False
    if mode == "none":
        w = None
    elif mode == "tis":
        w = rho.clamp(max=c["clip"])
        truncated = rho > c["clip"]
    elif mode == "seq_tis":
        seq_level = True
        log_seq = log_rho.sum(-1, keepdim=True).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        log_clip = torch.log(torch.tensor(float(c["clip"]), dtype=dtype, device=mask.device))
        w = torch.exp(torch.minimum(log_seq, log_clip)).expand_as(rho)
        truncated = (log_seq > log_clip).expand_as(rho)
    elif mode == "mis" and c["level"] == "token":
        w = ((rho >= c["low"]) & (rho <= c["high"])).to(dtype)
    elif mode == "mis":
        seq_level = True
        geo = torch.exp(log_rho.sum(-1, keepdim=True) / fm.sum(-1, keepdim=True).clamp_min(1.0))
        w = ((geo >= c["low"]) & (geo <= c["high"])).to(dtype).expand_as(rho)
    else:  # icepop
        w = torch.where((rho >= c["low"]) & (rho <= c["high"]), rho, torch.zeros_like(rho))
    if w is None:
        one = torch.ones((), dtype=dtype, device=mask.device)
        metrics.update(correction_masked_frac=zero, correction_truncated_frac=zero, correction_ess=one)
        return None, metrics
    w = torch.where(m, w, zero).detach()
    metrics["correction_masked_frac"] = masked_mean((w == 0).to(dtype), m)
    metrics["correction_truncated_frac"] = masked_mean(truncated.to(dtype), m)
    if seq_level:
        nonempty = m.any(-1)
        metrics["correction_ess"] = _ess(w.max(-1).values, nonempty)
    else:
        metrics["correction_ess"] = _ess(w, m)
    return w, metrics

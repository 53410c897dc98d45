"""DPPO, Divergence PPO (arXiv:2602.04879; sail-sg/Stable-RL): a divergence mask instead of ratio clipping.

Per token, anchor rollout (r = pi_theta / mu), D_t the divergence of pi_theta from mu on the sampled token
(``tv``: |pi - mu|; ``kl``: the binary KL)::

    M_t = 0 iff (A > 0, r_t > 1, D_t > delta) or (A < 0, r_t < 1, D_t > delta)    (moves away from mu)
    l_t = -A * sg[min(r_t, C)] * log pi_theta(y_t) * M_t

Gradient -A sg[min(r, C)] M. The loss value is not a surrogate.
"""

from __future__ import annotations

import torch

from ..registry import check_choice, check_number, register_objective
from .common import KL_DEFAULTS, validate_kl

BKL_EPS = 1e-8
DPPO_DELTA = {"tv": 0.15, "kl": 0.05}


def divergence(logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-token divergence between pi_theta and mu on the sampled token, in probability space.

    ``tv``: |pi - mu|; ``kl``: binary KL  mu log(mu/pi) + (1-mu) log((1-mu)/(1-pi)) (1e-8 inside logs).
    """
    pi, mu = logprobs.exp(), rollout_logprobs.exp()
    if kind == "tv":
        return (pi - mu).abs()
    return (mu * (torch.log(mu + BKL_EPS) - torch.log(pi + BKL_EPS))
            + (1 - mu) * (torch.log(1 - mu + BKL_EPS) - torch.log(1 - pi + BKL_EPS)))


def dppo_mask(ratio, adv, div, delta) -> torch.Tensor:
    """M_t = 0 iff the token moves away from mu beyond delta: (A>0, r>1, D>delta) or (A<0, r<1, D>delta)."""
    away = ((adv > 0) & (ratio > 1.0)) | ((adv < 0) & (ratio < 1.0))
    return ~(away & (div > delta))


def _dppo_validate(p):
    check_choice(p, "divergence", ("tv", "kl"))
    check_number(p, "delta", gt=0, allow_none=True)
    check_number(p, "is_clip", gt=0)
    validate_kl(p)


_DPPO = {"default_agg": "seq-mean-token-sum-norm", "anchor": "rollout", "validate": _dppo_validate,
         "reference": "arXiv:2602.04879"}


@register_objective("dppo_tv", defaults={"divergence": "tv", "delta": 0.15, "is_clip": 1e4, **KL_DEFAULTS},
                    **_DPPO)
@register_objective("dppo_kl", defaults={"divergence": "kl", "delta": 0.05, "is_clip": 1e4, **KL_DEFAULTS},
                    **_DPPO)
@register_objective("dppo", defaults={"divergence": "tv", "delta": None, "is_clip": 1e4, **KL_DEFAULTS},
                    **_DPPO)
def dppo_objective(inp, *, divergence, delta, is_clip):
    """DPPO (arXiv 2602.04879; sail-sg/Stable-RL): a divergence mask instead of ratio clipping,
    anchored to mu (r = pi_theta / mu).

    D_t = |pi - mu| (``divergence: tv``, ``dppo_tv``, delta 0.15; 0.2 at scale) or the binary KL
    (``kl``, ``dppo_kl``, delta 0.05). M_t = 0 only for moves away from mu beyond delta:
    (A > 0, r > 1, D > delta) or (A < 0, r < 1, D > delta). l = -A sg[min(r, C)] log pi_theta M_t,
    ``is_clip`` C = 1e4. Agg seq-mean-token-sum-norm; advantages dr_grpo. For the generic ``dppo`` key
    ``delta: null`` means 0.15 (tv) / 0.05 (kl). The loss value is not a surrogate.
    """
    return _dppo(inp, divergence, delta, is_clip)


def _dppo(inp, divergence_kind, delta, is_clip):
    # (a helper because the param ``divergence`` shadows the module's function of that name)
    if delta is None:
        delta = DPPO_DELTA[divergence_kind]
    r = inp.ratio.detach()
    div = divergence(inp.logprobs.detach(), inp.anchor_logprobs, divergence_kind)
    keep = dppo_mask(r, inp.advantages, div, delta).to(r.dtype)
    w = r.clamp(max=is_clip)
    return -inp.advantages * w * inp.logprobs * keep, {
        "mask_frac": inp.mean(1.0 - keep),
        "dppo_divergence_mean": inp.mean(div),
        "is_weight_mean": inp.mean(w),
    }

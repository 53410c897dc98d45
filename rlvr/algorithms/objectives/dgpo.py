"""DGPO, Decoupled Gradient Policy Optimization (arXiv:2603.14389; VenomRose-Juri/DGPO-RL).

A ratio-clipping variant whose clipped region keeps a decaying gradient instead of none. Per token,
anchor recompute (r = pi_theta / pi_old)::

    l_t = -A r~_t,   r~ = r                                       inside [1-eps_low, 1+eps_high], or where PPO
                                                                  would not clip
                     r~ = r^{n+1} / (1-eps_low)^n                 r < 1-eps_low and A < 0
                     r~ = (1+eps_high)^{1/m} r^{(m-1)/m}          r > 1+eps_high and A > 0

(values; the gradients are d/dlog pi of exp(log pi + n sg[log pi] - ...), see ``dgpo_objective``).
Both branches are continuous at the boundary; computed in log space.
"""

from __future__ import annotations

import math

import torch

from ..registry import check_number, register_objective
from .common import KL_DEFAULTS, validate_kl


def _dgpo_validate(p):
    check_number(p, "clip_eps_low", ge=0, lt=1)
    check_number(p, "clip_eps_high", ge=0)
    check_number(p, "n", gt=0)
    check_number(p, "m", ge=1)
    validate_kl(p)


@register_objective("dgpo", default_agg="token-mean", anchor="recompute",
                    defaults={"clip_eps_low": 0.2, "clip_eps_high": 0.2, "n": 1, "m": 2, **KL_DEFAULTS},
                    validate=_dgpo_validate, reference="arXiv:2603.14389")
def dgpo_objective(inp, *, clip_eps_low, clip_eps_high, n, m):
    """DGPO, Decoupled Gradient PO (arXiv 2603.14389; VenomRose-Juri/DGPO-RL), anchor recompute.

    l = -A r~: r~ = r inside [1-eps_low, 1+eps_high] and wherever PPO would not clip; for r < 1-eps_low
    and A < 0, r~ = exp(log pi + n sg[log pi] - (n+1) log pi_old) / (1-eps_low)^n (value
    r^{n+1}/(1-eps_low)^n, gradient weight -> 0 as pi -> 0); for r > 1+eps_high and A > 0,
    r~ = exp(log pi + log(1+eps_high)/m - ((m-1)/m) log pi_old - sg[log pi]/m). Both continuous at the
    boundary. n 1, m 2, eps 0.2/0.2, no dual clip; agg token-mean; advantages grpo. Log space throughout.
    """
    lr = inp.log_ratio
    lrd = lr.detach()
    adv = inp.advantages
    low = (lrd < math.log1p(-clip_eps_low)) & (adv < 0)
    high = (lrd > math.log1p(clip_eps_high)) & (adv > 0)
    log_low = lr + n * lrd - n * math.log1p(-clip_eps_low)
    log_high = lr - lrd / m + math.log1p(clip_eps_high) / m
    r_tilde = torch.exp(torch.where(low, log_low, torch.where(high, log_high, lr)))
    f = low.to(lrd.dtype), high.to(lrd.dtype)
    return -adv * r_tilde, {
        "clip_frac": inp.mean(f[0] + f[1]),
        "clip_frac_low": inp.mean(f[0]),
        "clip_frac_high": inp.mean(f[1]),
    }

"""SAPO, Soft Adaptive Policy Optimization (Qwen, arXiv:2511.20347): a soft sigmoid gate instead of a clip.

Per token, anchor recompute (r = pi_theta / pi_old)::

    l_t = -sigmoid(tau (r_t - 1)) * 4 / tau * A,   tau = tau_pos (1.0) if A > 0 else tau_neg (1.05)

Gradient -A * 4 s (1 - s) r: equal to -A r at r = 1, decaying smoothly away from it.
"""

from __future__ import annotations

import torch

from ..registry import check_number, register_objective
from .common import KL_DEFAULTS, validate_kl


def _sapo_validate(p):
    check_number(p, "tau_pos", gt=0)
    check_number(p, "tau_neg", gt=0)
    validate_kl(p)


@register_objective("sapo", default_agg="token-mean", anchor="recompute",
                    defaults={"tau_pos": 1.0, "tau_neg": 1.05, **KL_DEFAULTS},
                    validate=_sapo_validate,
                    reference="arXiv:2511.20347")
def sapo_objective(inp, *, tau_pos, tau_neg):
    """SAPO soft-gated objective (Qwen, arXiv 2511.20347), anchor recompute:
    l = -sigmoid(tau (r - 1)) * 4 / tau * A, tau = tau_pos (1.0) if A > 0 else tau_neg (1.05).
    Gradient -A * 4 s (1 - s) r: equal to -A r at r = 1, smoothly decaying away from it."""
    adv = inp.advantages
    tau = torch.where(adv > 0, torch.full_like(adv, tau_pos), torch.full_like(adv, tau_neg))
    gate = torch.sigmoid(tau * (inp.ratio - 1.0))
    g = gate.detach()
    return -gate * (4.0 / tau) * adv, {"clip_frac": inp.mean(torch.zeros_like(g)),
                                       "sapo_gate_weight": inp.mean(4.0 * g * (1.0 - g))}

"""DRPO, Divergence Regularized Policy Optimization (arXiv:2606.09821; Tencent-Hunyuan/UniRL).

Per token, anchor rollout (r = pi_theta / mu, differentiable; no clipping, no TIS)::

    l_t = -A r_t + |A| sg[mu_t] (r_t - 1)^2 / (2 delta)

Gradient -A r w with w = 1 - sign(A (r-1)) |pi - mu| / delta, in [1 - 1/delta, 1 + 1/delta].
``mu_weighted: false`` drops sg[mu]: SPO (arXiv:2401.16025).
"""

from __future__ import annotations

import torch

from ..aggregation import masked_max, masked_min
from ..registry import check_bool, check_number, register_objective
from .common import KL_DEFAULTS, validate_kl


def _drpo_validate(p):
    check_number(p, "delta", gt=0)
    check_bool(p, "mu_weighted")
    validate_kl(p)


@register_objective("drpo", default_agg="seq-mean-token-sum-norm", anchor="rollout",
                    defaults={"delta": 12.5, "mu_weighted": True, **KL_DEFAULTS}, validate=_drpo_validate,
                    reference="arXiv:2606.09821")
def drpo_objective(inp, *, delta, mu_weighted):
    """DRPO, Divergence Regularized PO (arXiv 2606.09821; Tencent-Hunyuan/UniRL), anchor rollout.

    l = -A r + |A| sg[mu] (r - 1)^2 / (2 delta), r = pi_theta / mu differentiable, no clipping, no TIS.
    Gradient weight w = 1 - sign(A (r-1)) |pi - mu| / delta in [1 - 1/delta, 1 + 1/delta], continuous.
    delta 12.5 (paper). ``mu_weighted: false`` drops sg[mu]: SPO (arXiv 2401.16025).
    Agg seq-mean-token-sum-norm; advantages dr_grpo.
    """
    r = inp.ratio
    adv = inp.advantages
    mw = inp.anchor_logprobs.exp() if mu_weighted else torch.ones_like(r)
    loss = -adv * r + adv.abs() * mw * (r - 1.0).square() / (2.0 * delta)
    w = 1.0 - torch.sign(adv) * mw * (r.detach() - 1.0) / delta
    return loss, {
        "clip_frac": inp.mean(torch.zeros_like(w)),
        "drpo_weight_mean": inp.mean(w),
        "drpo_weight_min": masked_min(w, inp.mask),
        "drpo_weight_max": masked_max(w, inp.mask),
    }

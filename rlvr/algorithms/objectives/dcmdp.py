"""DCMDP, Discrepancy-Constrained MDP (arXiv:2606.08779): the primal loss. **RECONSTRUCTION**: no formula
or code of the paper is public; this follows ALGORITHMS.md section 6, a reading of the abstract.

Per token, anchor recompute, delta_t = |pi_theta(y_t) - mu(y_t)| (differentiable through pi_theta)::

    l_t = l_grpo,t + lambda * delta_t                    (penalty: linear, default)
    l_t = l_grpo,t + lambda * max(0, delta_t - c)        (penalty: hinge)
    l_t = l_grpo,t with A_t <- A_t - lambda sg[delta_t]  (penalty: advantage)

lambda (``dcmdp_lambda``) is the current multiplier of ``rlvr.algorithms.dcmdp.DCMDPController`` (the dual
update, once per step); c is ``tolerance``.
"""

from __future__ import annotations

import torch

from ..registry import check_choice, check_number, register_objective
from .ppo import PPO_DEFAULTS, ppo_clip_core, ppo_validate

DCMDP_PENALTIES = ("linear", "hinge", "advantage")


def _dcmdp_validate(p):
    ppo_validate(p)
    check_number(p, "dcmdp_lambda", ge=0)
    check_choice(p, "penalty", DCMDP_PENALTIES)
    check_number(p, "tolerance", ge=0)


@register_objective("dcmdp", default_agg="seq-mean-token-mean", anchor="recompute",
                    defaults={**PPO_DEFAULTS, "dcmdp_lambda": 0.1, "penalty": "linear", "tolerance": 0.004},
                    validate=_dcmdp_validate, reference="arXiv:2606.08779 (reconstruction)")
def dcmdp_objective(inp, *, clip_eps_low, clip_eps_high, dual_clip_c, dcmdp_lambda, penalty, tolerance):
    """DCMDP primal loss (arXiv 2606.08779) — a RECONSTRUCTION (no public formula/code), see module doc.

    GRPO/PPO-clip loss (anchor recompute; eps 0.2/0.2; kl_coef 0 by default) plus, per token,
    ``dcmdp_lambda`` * |pi_theta - mu| (``penalty: linear``, default), lambda * max(0, |pi - mu| - tol)
    (``hinge``), or advantage shaping A - lambda sg[|pi - mu|] (``advantage``). ``dcmdp_lambda`` is the
    current multiplier from ``DCMDPController`` (default 0.1 = lambda_0); ``tolerance`` c 0.004.
    Metrics ``dcmdp_delta`` (mean |pi - mu|), ``dcmdp_lambda``, ``dcmdp_violation`` (delta - c).
    """
    mu = inp.require("rollout_logprobs")
    delta_t = (inp.logprobs.exp() - mu.exp()).abs()
    adv = inp.advantages
    if penalty == "advantage":
        adv = adv - dcmdp_lambda * delta_t.detach()
    loss, clipped, dual = ppo_clip_core(inp.ratio, adv, clip_eps_low, clip_eps_high, dual_clip_c)
    if penalty == "linear":
        inp.add_term("dcmdp_penalty", dcmdp_lambda * delta_t)
    elif penalty == "hinge":
        inp.add_term("dcmdp_penalty", dcmdp_lambda * torch.relu(delta_t - tolerance))
    mean_delta = inp.mean(delta_t)
    return loss, {
        "clip_frac": inp.mean(clipped.to(delta_t.dtype)),
        "dual_clip_frac": inp.mean(dual.to(delta_t.dtype)),
        "dcmdp_delta": mean_delta,
        "dcmdp_lambda": float(dcmdp_lambda),
        "dcmdp_violation": mean_delta - tolerance,
    }

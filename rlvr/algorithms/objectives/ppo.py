"""PPO-clip (arXiv:1707.06347) and the keys that share its function: grpo, dr_grpo, dapo, reinforce_pp.

Per token, anchor recompute (r = pi_theta / pi_old)::

    l_t = max(-A r_t, -A clip(r_t, 1 - eps_low, 1 + eps_high))
    dual clip (c > 1, off unless dual_clip_c is set): for A < 0, l_t = min(l_t, -c A)

The keys differ only in their default params and aggregation:
  ``ppo``          eps 0.2/0.2, agg token-mean.
  ``grpo``         (DeepSeekMath, arXiv 2402.03300) eps 0.2/0.2, agg seq-mean-token-mean.
  ``dr_grpo``      (arXiv 2503.20783) eps 0.2/0.2, agg seq-mean-token-sum-norm (H = max response length).
  ``dapo``         (arXiv 2503.14476) clip-higher eps 0.2/0.28, dual clip c = 10, agg token-mean.
  ``reinforce_pp`` (arXiv 2501.03262) eps 0.2/0.2, agg seq-mean-token-mean.
A preset's own params (e.g. GRPO's kl_coef) are in its ``configs/algorithm/<key>.yaml``.
"""

from __future__ import annotations

import torch

from ..registry import check_number, register_objective
from .common import KL_DEFAULTS, validate_kl


def ppo_clip_core(ratio, adv, eps_low, eps_high, dual_clip_c=None):
    """PPO clipped per-token loss max(-A r, -A clip(r, 1-eps_low, 1+eps_high)), with dual clip for A < 0
    (l = min(l, -c A)). Returns (loss, clipped bool, dual-clipped bool)."""
    l1 = -adv * ratio
    l2 = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(l1, l2)
    clipped = l2 > l1
    dual = torch.zeros_like(clipped)
    if dual_clip_c is not None:
        l3 = -adv * dual_clip_c
        dual = (adv < 0) & (loss > l3)
        loss = torch.where(adv < 0, torch.minimum(loss, l3), loss)
    return loss, clipped, dual


def ppo_validate(p):
    check_number(p, "clip_eps_low", ge=0)
    check_number(p, "clip_eps_high", ge=0)
    check_number(p, "dual_clip_c", gt=1, allow_none=True)
    validate_kl(p)


PPO_DEFAULTS = {"clip_eps_low": 0.2, "clip_eps_high": 0.2, "dual_clip_c": None, **KL_DEFAULTS}
_PPO = {"anchor": "recompute", "validate": ppo_validate}


@register_objective("reinforce_pp", default_agg="seq-mean-token-mean", defaults=PPO_DEFAULTS,
                    reference="arXiv:2501.03262", **_PPO)
@register_objective("dapo", default_agg="token-mean",
                    defaults={**PPO_DEFAULTS, "clip_eps_high": 0.28, "dual_clip_c": 10.0},
                    reference="arXiv:2503.14476", **_PPO)
@register_objective("dr_grpo", default_agg="seq-mean-token-sum-norm", defaults=PPO_DEFAULTS,
                    reference="arXiv:2503.20783", **_PPO)
@register_objective("grpo", default_agg="seq-mean-token-mean", defaults=PPO_DEFAULTS,
                    reference="arXiv:2402.03300", **_PPO)
@register_objective("ppo", default_agg="token-mean", defaults=PPO_DEFAULTS,
                    reference="arXiv:1707.06347", **_PPO)
def ppo_objective(inp, *, clip_eps_low, clip_eps_high, dual_clip_c):
    """PPO-clip, anchor recompute: l = max(-A r, -A clip(r, 1-eps_low, 1+eps_high)), optional dual clip
    (see the module docstring for the keys registered on this function)."""
    r = inp.ratio
    loss, clipped, dual = ppo_clip_core(r, inp.advantages, clip_eps_low, clip_eps_high, dual_clip_c)
    rd = r.detach()
    return loss, {
        "clip_frac": inp.mean(clipped.to(rd.dtype)),
        "clip_frac_low": inp.mean((clipped & (rd < 1.0)).to(rd.dtype)),
        "clip_frac_high": inp.mean((clipped & (rd > 1.0)).to(rd.dtype)),
        "dual_clip_frac": inp.mean(dual.to(rd.dtype)),
    }

"""GSPO, Group Sequence Policy Optimization (Qwen, arXiv:2507.18071), in its GSPO-token form.

Per token, anchor recompute, with log s_i = mean_t log(pi_theta / pi_old) over sequence i (detached)::

    s_{i,t} = exp(sg[log s_i] + log pi_theta(y_t) - sg[log pi_theta(y_t)])   (exponent clamped at 10)
    l_t     = max(-A s_{i,t}, -A clip(s_{i,t}, 1 - eps_low, 1 + eps_high))

With a per-sequence A this has the gradient of sequence-level GSPO.
"""

from __future__ import annotations

import torch

from ..aggregation import masked_max
from ..registry import register_objective
from .common import KL_DEFAULTS, validate_eps
from .ppo import ppo_clip_core

GSPO_EXP_CLAMP = 10.0


@register_objective("gspo", default_agg="seq-mean-token-mean", anchor="recompute",
                    defaults={"clip_eps_low": 3e-4, "clip_eps_high": 4e-4, **KL_DEFAULTS},
                    validate=validate_eps,
                    reference="arXiv:2507.18071")
def gspo_objective(inp, *, clip_eps_low, clip_eps_high):
    """GSPO, GSPO-token form (arXiv 2507.18071), anchor recompute.

    s_i = exp(mean_t log(pi_theta / pi_old)) per sequence; per token
    s_{i,t} = exp(sg[log s_i] + log pi_theta(y_t) - sg[log pi_theta(y_t)]) (exponent clamped at 10, so
    the gradient is zero beyond); l = max(-A s, -A clip(s, 1-eps_low, 1+eps_high)). eps 3e-4 / 4e-4;
    agg seq-mean-token-mean. With per-sequence A this equals the sequence-level GSPO gradient.
    """
    fm = inp.fmask
    log_s = ((inp.log_ratio.detach() * fm).sum(-1, keepdim=True) / fm.sum(-1, keepdim=True).clamp_min(1.0))
    expo = (log_s + inp.logprobs - inp.logprobs.detach()).clamp(max=GSPO_EXP_CLAMP)
    s = torch.exp(expo)
    loss, clipped, _ = ppo_clip_core(s, inp.advantages, clip_eps_low, clip_eps_high, None)
    sd = s.detach()
    return loss, {
        "clip_frac": inp.mean(clipped.to(sd.dtype)),
        "seq_ratio_mean": inp.mean(sd),
        "seq_ratio_max": masked_max(sd, inp.mask),
    }

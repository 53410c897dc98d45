"""CISPO, Clipped IS-weight Policy Optimization (MiniMax-M1, arXiv:2506.13585).

Per token, anchor recompute (r = pi_theta / pi_old): clip the detached IS weight, never drop a token's
gradient::

    l_t = -sg[clip(r_t, 1 - eps_low, 1 + eps_high)] * A * log pi_theta(y_t)

eps_low 10.0 (effectively unbounded below), eps_high 0.2. The loss value is not a surrogate.
"""

from __future__ import annotations

from ..registry import register_objective
from .common import KL_DEFAULTS, validate_eps


@register_objective("cispo", default_agg="token-mean", anchor="recompute",
                    defaults={"clip_eps_low": 10.0, "clip_eps_high": 0.2, **KL_DEFAULTS},
                    validate=validate_eps,
                    reference="arXiv:2506.13585")
def cispo_objective(inp, *, clip_eps_low, clip_eps_high):
    """CISPO (MiniMax-M1, arXiv 2506.13585), anchor recompute: clip the (detached) IS weight, never
    drop a token's gradient: l = -sg[clip(r, 1-eps_low, 1+eps_high)] A log pi_theta. eps_low 10.0
    (effectively unbounded below), eps_high 0.2; agg token-mean. The loss value is not a surrogate."""
    r = inp.ratio.detach()
    w = r.clamp(1.0 - clip_eps_low, 1.0 + clip_eps_high)
    clipped = ((r > 1.0 + clip_eps_high) | (r < 1.0 - clip_eps_low)).to(r.dtype)
    return -w * inp.advantages * inp.logprobs, {"clip_frac": inp.mean(clipped), "is_weight_mean": inp.mean(w)}

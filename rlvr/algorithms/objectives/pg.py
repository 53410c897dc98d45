"""pg / rloo: REINFORCE with an optional detached importance weight (Williams 1992; RLOO arXiv:2402.14740).

Per token, anchor rollout (r = pi_theta / mu)::

    l_t = -sg[w_t] * A * log pi_theta(y_t),   w_t = 1 (is_mode none) | r_t (is) | min(r_t, C) (tis)

Only the gradient -w A grad log pi is meaningful; the value is not a surrogate.
"""

from __future__ import annotations

import torch

from ..registry import check_choice, check_number, register_objective
from .common import KL_DEFAULTS, validate_kl


def _pg_validate(p):
    check_choice(p, "is_mode", ("none", "is", "tis"))
    check_number(p, "is_clip", gt=0)
    validate_kl(p)


PG_DEFAULTS = {"is_mode": "none", "is_clip": 2.0, **KL_DEFAULTS}


@register_objective("rloo", default_agg="seq-mean-token-sum", anchor="rollout", defaults=PG_DEFAULTS,
                    validate=_pg_validate, reference="arXiv:2402.14740")
@register_objective("pg", default_agg="seq-mean-token-sum", anchor="rollout", defaults=PG_DEFAULTS,
                    validate=_pg_validate, reference="Williams 1992; arXiv:2402.14740")
def pg_objective(inp, *, is_mode, is_clip):
    """REINFORCE with an optional detached importance weight w (anchor: rollout, r = pi_theta / mu).

    l = -sg[w] A log pi_theta; w = 1 (``is_mode: none``, default), r (``is``), min(r, C) (``tis``,
    ``is_clip`` C = 2.0). Default agg ``seq-mean-token-sum``. Also registered as ``rloo`` (RLOO,
    arXiv 2402.14740, used with the ``rloo`` advantage). The loss value is not a surrogate; only its
    gradient -w A grad log pi is meaningful.
    """
    r = inp.ratio.detach()
    clipped = torch.zeros_like(r)
    if is_mode == "none":
        w = torch.ones_like(r)
    elif is_mode == "is":
        w = r
    else:
        w = r.clamp(max=is_clip)
        clipped = (r > is_clip).to(r.dtype)
    return -w * inp.advantages * inp.logprobs, {"clip_frac": inp.mean(clipped), "is_weight_mean": inp.mean(w)}

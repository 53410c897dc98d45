"""What every built-in objective shares: the KL-to-reference params.

The loss pipeline (``loss.py``), not the objective, adds ``kl_coef * KL_est(pi_theta || pi_ref)`` per token
(estimator ``kl_type``: k1/k2/k3, ALGORITHMS.md section 7) to any objective that declares these params;
``kl_coef`` 0 (the default) adds nothing.
"""

from __future__ import annotations

from ..kl import KL_KINDS
from ..registry import check_choice, check_number

KL_DEFAULTS = {"kl_coef": 0.0, "kl_type": "k3"}


def validate_kl(p) -> None:
    check_number(p, "kl_coef", ge=0)
    check_choice(p, "kl_type", KL_KINDS)


def validate_eps(p) -> None:
    """The two clip widths of a ratio-clipping objective (plus the KL params)."""
    check_number(p, "clip_eps_low", ge=0)
    check_number(p, "clip_eps_high", ge=0)
    validate_kl(p)

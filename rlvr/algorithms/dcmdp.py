"""DCMDP — Discrepancy-Constrained MDP (arXiv 2606.08779). **RECONSTRUCTION**: no formula or code of
the paper is public; this follows ALGORITHMS.md section 6, a reading of the abstract.

Maximise reward subject to a bound on the training-inference discrepancy, by Lagrangian relaxation:
  primal (per token):  l = l_grpo + lambda * delta_t,  delta_t = |pi_theta(y_t) - mu(y_t)|
                       (differentiable through pi_theta); ``penalty: hinge`` uses
                       lambda * max(0, delta_t - c); ``penalty: advantage`` instead shapes
                       A_t <- A_t - lambda * sg[delta_t] inside the GRPO loss.
  dual (once per step): lambda <- clip(lambda + eta * (mean delta - c), lambda_min, lambda_max)
                       c (tolerance) 0.004, lambda_0 0.1, eta 1.0, lambda in [0, 1].
The primal loss is the ``dcmdp`` objective (``objectives/dcmdp.py``); this module is the dual side.
The trainer owns a ``DCMDPController``, passes ``dcmdp_lambda=controller.value`` to the objective,
averages the ``dcmdp_delta`` metric over the step and calls ``controller.update(mean_delta)``; the
controller's ``state_dict`` goes into the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .registry import check_number


class DCMDPController:
    """Dual ascent on the DCMDP multiplier (RECONSTRUCTION, arXiv 2606.08779; ALGORITHMS.md section 6).

    ``update(mean_delta)``: lambda <- clip(lambda + eta * (mean_delta - tolerance), lambda_min,
    lambda_max), once per training step. A non-finite ``mean_delta`` leaves lambda unchanged.
    """

    def __init__(self, lambda_init: float = 0.1, eta: float = 1.0, tolerance: float = 0.004,
                 lambda_min: float = 0.0, lambda_max: float = 1.0):
        p = {"lambda_init": lambda_init, "eta": eta, "tolerance": tolerance, "lambda_min": lambda_min,
             "lambda_max": lambda_max}
        try:
            for k in p:
                check_number(p, k)
            check_number(p, "eta", gt=0)
            check_number(p, "tolerance", ge=0)
            check_number(p, "lambda_min", ge=0)
            check_number(p, "lambda_max", ge=lambda_min)
            check_number(p, "lambda_init", ge=lambda_min, le=lambda_max)
        except ValueError as e:
            raise ValueError(f"DCMDPController: {e}") from None
        self.eta = float(eta)
        self.tolerance = float(tolerance)
        self.lambda_min = float(lambda_min)
        self.lambda_max = float(lambda_max)
        self._lambda = float(lambda_init)
        self.num_updates = 0

    @classmethod
    def from_config(cls, cfg: Any) -> DCMDPController:
        """From the ``algorithm.dcmdp`` config block: an object with these attributes (the typed config) or
        a mapping; ``enabled`` is not looked at, and unset (None or absent) keys keep the defaults."""
        keys = ("lambda_init", "eta", "tolerance", "lambda_min", "lambda_max")
        get = cfg.get if isinstance(cfg, Mapping) else (lambda k: getattr(cfg, k, None))
        return cls(**{k: get(k) for k in keys if get(k) is not None})

    @property
    def value(self) -> float:
        return self._lambda

    def update(self, mean_delta: float | torch.Tensor) -> dict[str, float]:
        d = float(mean_delta.detach().mean()) if isinstance(mean_delta, torch.Tensor) else float(mean_delta)
        prev = self._lambda
        skipped = not math.isfinite(d)
        if not skipped:
            self._lambda = min(max(prev + self.eta * (d - self.tolerance), self.lambda_min), self.lambda_max)
            self.num_updates += 1
        return {
            "dcmdp_lambda": self._lambda,
            "dcmdp_lambda_prev": prev,
            "dcmdp_delta": d,
            "dcmdp_violation": d - self.tolerance,
            "dcmdp_update_skipped": float(skipped),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"lambda": self._lambda, "num_updates": self.num_updates, "eta": self.eta,
                "tolerance": self.tolerance, "lambda_min": self.lambda_min, "lambda_max": self.lambda_max}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore lambda and the update count (the configured eta/tolerance/bounds are kept; lambda is
        clipped to them)."""
        if "lambda" not in state:
            raise ValueError("DCMDPController.load_state_dict: missing 'lambda'")
        lam = float(state["lambda"])
        self._lambda = min(max(lam, self.lambda_min), self.lambda_max)
        self.num_updates = int(state.get("num_updates", 0))

    def __repr__(self) -> str:
        return (f"DCMDPController(lambda={self._lambda:.6g}, eta={self.eta}, tolerance={self.tolerance}, "
                f"bounds=[{self.lambda_min}, {self.lambda_max}])")

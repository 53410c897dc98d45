"""The built-in objectives, one module per objective (a paper), each registered with ``register_objective``.

Every built-in is imported here explicitly, so the registry's contents do not depend on which other
module happened to be imported first. A user's own objective registers the same way from a module named
in ``algorithm.plugins``.

  pg.py     pg, rloo                              REINFORCE (+ detached IS weight), anchor rollout
  ppo.py    ppo, grpo, dr_grpo, dapo, reinforce_pp PPO-clip; the keys differ in defaults and aggregation
  gspo.py   gspo                                  sequence-level ratio (GSPO-token form)
  cispo.py  cispo                                 clipped detached IS weight
  sapo.py   sapo                                  soft sigmoid gate
  dppo.py   dppo, dppo_tv, dppo_kl                divergence mask, anchor rollout
  drpo.py   drpo                                  quadratic divergence regulariser, anchor rollout
  dgpo.py   dgpo                                  decaying gradient outside the trust region
  dcmdp.py  dcmdp                                 GRPO + Lagrangian discrepancy penalty (reconstruction)

The KL-to-reference term is not an objective's business: the loss pipeline (``loss.py``) adds it for
every objective that declares ``kl_coef`` / ``kl_type`` (``common.KL_DEFAULTS``).
"""

from . import cispo, dcmdp, dgpo, dppo, drpo, gspo, pg, ppo, sapo  # noqa: F401  (registers the built-ins)
from .common import KL_DEFAULTS, validate_eps, validate_kl

__all__ = ["KL_DEFAULTS", "cispo", "dcmdp", "dgpo", "dppo", "drpo", "gspo", "pg", "ppo", "sapo", "validate_eps",
           "validate_kl"]

"""rlvr.algorithms: the algorithm registry (pure torch; imports nothing from other rlvr subpackages).

Public API (ALGORITHMS.md section 1)::

    adv = compute_advantages(name, rewards, group_index, *, mask=None, old_logprobs=None,
                             ref_logprobs=None, **params)
    loss, metrics = compute_policy_loss(name, *, logprobs, old_logprobs, rollout_logprobs, advantages,
                                        mask, ref_logprobs=None, loss_agg_mode=None, horizon=None,
                                        num_tokens=None, num_seqs=None, correction=None, **params)
    value = aggregate_loss(per_token_loss, mask, mode, horizon=None, num_tokens=None, num_seqs=None)

Objectives (``objectives/``, one module each) and advantage estimators are registered with
``register_objective`` / ``register_advantage``; ``OBJECTIVES`` / ``ADVANTAGES`` map keys to their specs.
``loss.py`` is the loss pipeline around an objective (inputs, KL term, correction, aggregation).
"""

from . import objectives  # noqa: F401  (registers the built-in objectives, one module each)
from .advantages import compute_advantages, compute_gae, gae_returns, group_stats
from .aggregation import aggregate_loss, masked_mean, masked_whiten
from .corrections import CORRECTION_MODES, compute_correction, mismatch_metrics, resolve_correction
from .dcmdp import DCMDPController
from .diagnostics import rollout_diagnostics
from .kl import KL_KINDS, kl_estimate
from .loss import PolicyInputs, compute_policy_loss
from .registry import (
    ADVANTAGES,
    AGG_MODES,
    ANCHORS,
    OBJECTIVES,
    UnknownKeyError,
    needs_reference,
    objective_info,
    register_advantage,
    register_objective,
    resolve_advantage_params,
    resolve_objective_params,
)
from .shaping import correctness_reward, dynamic_sampling_keep, overlong_cache_tokens, overlong_penalty
from .value import VALUE_DEFAULTS, value_loss

__all__ = [
    "ADVANTAGES", "AGG_MODES", "ANCHORS", "CORRECTION_MODES", "KL_KINDS", "OBJECTIVES",
    "DCMDPController", "PolicyInputs", "UnknownKeyError",
    "aggregate_loss", "compute_advantages", "compute_correction", "compute_gae", "compute_policy_loss", "gae_returns",
    "correctness_reward", "dynamic_sampling_keep", "group_stats", "kl_estimate",
    "masked_mean", "masked_whiten", "mismatch_metrics", "needs_reference", "objective_info",
    "overlong_cache_tokens", "overlong_penalty", "register_advantage", "register_objective", "resolve_advantage_params",
    "resolve_correction", "resolve_objective_params", "rollout_diagnostics", "VALUE_DEFAULTS", "value_loss",
]

"""Sandboxed answer verification for RLVR rewards.

    from rlvr.verifier import make_verifier, compute_rewards
    with make_verifier(mode="process", workers=2, timeout_s=5.0) as v:
        results = v.verify(responses, golds)          # one VerifyResult per input, in order
    rewards = compute_rewards(results, responses, kind="correctness")

Importing this package is light: math-verify/sympy load in the workers (or on first inline use),
Ray/FastAPI/httpx only in the modes that need them. Nothing here imports other rlvr subpackages but
``rlvr.algorithms`` (DAPO's overlong penalty) and ``rlvr.config`` (its cache length), inside the reward
functions.
"""

from .api import InlineVerifier, make_verifier, make_verifier_from_config
from .core import verify_one
from .extract import extract_answer, normalize_gold
from .result import ANSWER_FORMATS, MODES, REASONS, BaseVerifier, VerifyResult
from .rewards import REWARD_KINDS, compute_rewards, reward_settings, shaped_rewards

__all__ = [
    "ANSWER_FORMATS",
    "MODES",
    "REASONS",
    "REWARD_KINDS",
    "BaseVerifier",
    "InlineVerifier",
    "VerifyResult",
    "compute_rewards",
    "extract_answer",
    "make_verifier",
    "make_verifier_from_config",
    "normalize_gold",
    "reward_settings",
    "shaped_rewards",
    "verify_one",
]

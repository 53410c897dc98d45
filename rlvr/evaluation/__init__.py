"""One evaluator for held-out evaluation during training and for `rlvr eval`.

- ``core``: ``evaluate`` (the training loop's held-out accuracy), ``generate_sorted`` and
  ``verify_samples`` (what both paths sample and verify with), ``EngineRollouts`` (an in-process vLLM
  engine behind the rollout group's ``generate`` interface);
- ``config``: ``EvalConfig``, the train config's ``data`` and ``verifier`` blocks plus eval-only keys;
- ``metrics``: pass@k, maj@k;
- ``inputs``: model directory, problems, prompts and the in-process engine (shared with `rlvr rollout`);
- ``command``: `rlvr eval` itself (``evaluate_model``, ``eval_main``).

Nothing here imports the orchestrator: the loop calls ``evaluate`` with its own rollout group.
"""

from rlvr.evaluation.command import eval_main, evaluate_model
from rlvr.evaluation.config import LEGACY_KEYS, EvalConfig, EvalError, build_config, parse_overrides, validate
from rlvr.evaluation.core import EngineRollouts, evaluate, generate_sorted, verify_samples
from rlvr.evaluation.inputs import resolve_model_dir
from rlvr.evaluation.metrics import majority_vote, normalize_answer, pass_at_k, score_problems

__all__ = [
    "LEGACY_KEYS", "EngineRollouts", "EvalConfig", "EvalError", "build_config", "eval_main", "evaluate",
    "evaluate_model", "generate_sorted", "majority_vote", "normalize_answer", "parse_overrides", "pass_at_k",
    "resolve_model_dir", "score_problems", "validate", "verify_samples",
]

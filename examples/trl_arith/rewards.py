"""Reward functions written for TRL's GRPOTrainer, used unchanged by rlvr:

    rlvr train algorithm.reward=custom verifier.custom_reward=examples.trl_arith.rewards:first_int_reward \
        data.train_path=arith.jsonl data.template=raw

Each gets the prompts and completions as lists of strings, every other data set column by name (here
`answer`) and, in rlvr, the verifier's verdicts as `verdicts` (swallowed by **kwargs when unused), and
returns one float (or None: "no opinion", left out of the weighted sum) per completion.
"""

from __future__ import annotations

import re

_INT = re.compile(r"-?\d+")


def first_int_reward(prompts, completions, answer, **kwargs):
    """1.0 when the first integer in the completion equals the `answer` column, else 0.0."""
    rewards = []
    for completion, gold in zip(completions, answer):
        match = _INT.search(completion)
        rewards.append(1.0 if match and int(match.group()) == int(gold) else 0.0)
    return rewards


def short_reward(completions, **kwargs):
    """A second, shaping reward: favours short completions (1.0 at 0 characters, 0.0 at 24 or more)."""
    return [max(0.0, 1.0 - len(c) / 24) for c in completions]


def verified_reward(completions, verdicts, **kwargs):
    """The verifier's verdict as a reward, or None (missing) when the completion states no answer."""
    return [None if v.reason == "no_answer" else v.score for v in verdicts]

"""The metrics of `rlvr eval`: pass@k (unbiased), maj@k (majority vote over extracted answers)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct out of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``.

    The probability that a random ``k``-subset of the ``n`` samples holds at least one correct one
    (Chen et al. 2021). Exact integer binomials, so large ``n`` loses no precision.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k takes integers, got n={n!r} c={c!r} k={k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k} n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c} n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|\\left|\\right|\s+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def normalize_answer(answer: str | None) -> str | None:
    """The key majority voting groups answers by: equal keys are the same answer.

    Removes surrounding ``$``, spacing commands and whitespace, ``\\text{...}`` wrappers, thousands
    separators and a trailing period; ``\\dfrac``/``\\tfrac`` become ``\\frac``; plain decimal numbers
    take one canonical spelling (``3.0`` -> ``3``, ``+0.50`` -> ``0.5``). ``None`` or an empty answer
    gives ``None`` (no vote).
    """
    if answer is None:
        return None
    text = str(answer).strip().strip("$").strip()
    text = _TEXT_WRAP.sub(r"\1", text)
    text = _SPACING.sub("", text)
    text = _THOUSANDS.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")
    if _NUMBER.fullmatch(text):
        try:
            value = Decimal(text)
        except InvalidOperation:
            return text or None
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    return text or None


def majority_vote(answers: Sequence[str | None], correct: Sequence[float | bool]) -> tuple[str | None, bool]:
    """Vote over ``answers`` (one extracted answer per sample, ``None`` for none) -> (voted key, correct).

    Answers are grouped by ``normalize_answer``; samples without an answer do not vote. The most
    frequent group wins; a tie goes to the group whose first member comes first. The vote is correct
    iff the first sample of the winning group was judged correct (``correct[i]`` truthy). No answer at
    all gives ``(None, False)``.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} verdicts")
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        key = normalize_answer(answer)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None, False
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return best, bool(correct[first[best]])


def score_problems(extracted: Sequence[Sequence[str | None]], scores: Sequence[Sequence[float]], k: int) -> dict:
    """pass@1, pass@k and maj@k over problems, given each problem's n extracted answers and 0/1 scores."""
    if not scores:
        raise ValueError("no problems to score")
    p1, pk, mk = [], [], []
    for answers, score in zip(extracted, scores, strict=True):
        n, c = len(score), sum(1 for s in score if s > 0)
        p1.append(c / n)
        pk.append(pass_at_k(n, c, k))
        mk.append(float(majority_vote(list(answers)[:k], list(score)[:k])[1]))
    count = len(scores)
    return {"pass@1": sum(p1) / count, "pass@k": sum(pk) / count, "maj@k": sum(mk) / count}

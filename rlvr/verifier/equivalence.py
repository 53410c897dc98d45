r"""Is an extracted answer equivalent to the gold answer? A thin, timeout-free layer over math-verify.

math-verify's own timeouts use ``signal.alarm``, which raises in any thread but the main one and
does nothing useful in a pool. We call it with its timeouts disabled and enforce a hard wall-clock
limit one level up (the worker process is killed; see ``pool.py``).

Both strings go through ``math_verify.parse`` (LaTeX first, then plain expressions), then
``math_verify.verify(gold, pred)``: numbers (thousands separators, decimals), fractions,
percentages, LaTeX, sets, intervals, equations and relations, matrices; text units are stripped.

One rule on top: when the gold answer is a plain number, the answer must be a number too, never the
arithmetic that leads to it. math-verify evaluates "9 + 9" to 18, and a policy trained against that
learns to restate the question ("The answer is: 9 + 9"), which is measured here, not hypothetical.
Fractions (1/2, \frac{1}{2}), powers of ten and scientific notation (10^3, 1.5 \times 10^3)
stay final forms.
"""

from __future__ import annotations

import re
from functools import lru_cache

FLOAT_ROUNDING = 6

_WS = re.compile(r"\s+")
_TEXT = re.compile(r"\\(?:text|textbf|textnormal|mathrm|mbox)\{([^{}]*)\}")
_PRIME = re.compile(r"(?<=[A-Za-z0-9)}'])'(?![A-Za-z])")  # f'(x), x'' -- not the apostrophe in "it's"
_MATHRM_LETTER = re.compile(r"\\mathrm\{([a-zA-Z])\}")  # math-verify 0.9 mis-parses \mathrm{e}
_PUNCT_BEFORE_CLOSE = re.compile(r"(?<![.\\])\s*[.,;]\s*(?=\$|\\\]|\\\))")
# Plain-word units after a number ("5 dollars", "12 inches"); \text{...} units math-verify strips itself.
_UNITS = (
    "dollars?|cents?|euros?|yuan|mph|kph|inch(?:es)?|feet|foot|ft|yards?|miles?|meters?|metres?|"
    "cm|mm|km|kg|grams?|kilograms?|pounds?|lbs?|ounces?|liters?|litres?|ml|gallons?|hours?|hrs?|"
    "minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|degrees?|units?|points?|ways"
)
_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)$")
# a digit, an operator, a digit: "9 + 9", "3*4", "2^{3}", "6 \times 7" (not "-4", "1/2", "1.5 \times 10^3")
_ARITHMETIC = re.compile(r"\d\s*[)}]*\s*(?:[-+*^×÷·]|\\times|\\cdot|\\div)\s*[({]*\s*-?\d")
_SCIENTIFIC = re.compile(r"(?:\s*(?:\\times|\\cdot|[×*·])\s*|(?<![\d.]))10\s*\^\s*\{?\s*[-+]?\d+\s*\}?")
# "4 4/9" (a mixed number, GSM-style): read as 40/9, never as 4 * 4/9; "11 6/6" and "4 4/0" stay unreadable.
_MIXED = re.compile(r"^([-+]?)(\d{1,3}(?:[ ,]\d{3})+|\d+) +(\d+)/(\d+)(\s*(?:\\?%|percent(?:age)?|pct))?$")
_PERCENT = re.compile(r"\\?%|\bpercent\b", re.IGNORECASE)
_LATEX_CMD = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}(?:\{[^{}]*\})?|\\[A-Za-z]+")  # \begin{array}{cc} whole
_PROSE_WORD = re.compile(r"[A-Za-z]{2,}")
_TRAILING_UNIT = re.compile(
    rf"(?<=[\d}}])\s*(?:(?:square|sq|cubic)\s+)?\b(?:{_UNITS})\b(?:\^?\{{?[23]\}}?|²|³)?\.?\s*$", re.IGNORECASE
)


@lru_cache(maxsize=1)
def _mv():
    import logging

    import math_verify
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # math-verify warns once that its timeout is off: that is deliberate here.
    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    configs = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
    return math_verify, configs


def _canon(s: str) -> str:
    s = _TEXT.sub(r"\1", s)
    return _WS.sub("", s).strip("$").lower()


def _mixed_number(answer: str) -> str:
    m = _MIXED.match(answer)
    if not m:
        return answer
    whole, num, den = int(re.sub("[ ,]", "", m.group(2))), int(m.group(3)), int(m.group(4))
    if den == 0 or num >= den:
        return answer
    sign = "-" if m.group(1) == "-" else ""
    return f"{sign}\\frac{{{whole * den + num}}}{{{den}}}"  # a percent sign is read off the raw answer


def _prepare(answer: str) -> str:
    answer = _mixed_number(answer.strip().replace("\\$", ""))
    answer = _MATHRM_LETTER.sub(r"\1", answer)
    answer = _PUNCT_BEFORE_CLOSE.sub("", answer)
    if "percent" not in answer.lower():
        answer = _TRAILING_UNIT.sub("", answer).strip()
    return answer


def parse_answer(answer: str) -> list:
    """math-verify's parse of a bare answer string (wrapped as display math), no timeout."""
    mv, configs = _mv()
    answer = _prepare(answer)
    if not answer:
        return []
    delimited = any(d in answer for d in ("$", "\\boxed", "\\[", "\\("))
    if not delimited and _is_prose(answer):  # "Final Answer: Jane started 3 hours ago": the plain-text parser
        parsed = mv.parse(answer, configs, parsing_timeout=None)
        if parsed:
            return parsed
    wrapped = answer if delimited else f"${answer}$"
    parsed = mv.parse(wrapped, configs, parsing_timeout=None)
    if not parsed and wrapped is not answer:
        parsed = mv.parse(answer, configs, parsing_timeout=None)
    return parsed


def _is_prose(answer: str) -> bool:
    """Three or more words outside LaTeX commands: a sentence, which as maths would read as a product of letters."""
    return len(_PROSE_WORD.findall(_TEXT.sub(" ", _LATEX_CMD.sub(" ", answer)))) >= 3


def _percent_of(gold: list, pred: str, gold_str: str) -> list:
    """``10%`` for the gold ``0.1``: the gold as a percentage, when only the answer has a percent sign."""
    if not _PERCENT.search(pred) or _PERCENT.search(gold_str) or not gold:
        return []
    import sympy

    return [gold[0] * 100] if isinstance(gold[0], sympy.Number) else []


def answers_equivalent(gold: str, pred: str) -> bool:
    """True if the bare answers ``gold`` and ``pred`` denote the same mathematical object."""
    gold = gold.strip()
    pred = pred.strip()
    if not gold or not pred:
        return False
    if _canon(gold) == _canon(pred):
        return True
    if len(_PRIME.findall(gold)) != len(_PRIME.findall(pred)):  # math-verify 0.9 drops primes: f'(x) == f(x)
        return False
    if _PLAIN_NUMBER.match(_canon(gold)) and _ARITHMETIC.search(_SCIENTIFIC.sub("", _prepare(pred))):
        return False  # unevaluated arithmetic for a numeric answer (see the module docstring)
    mv, _ = _mv()
    g = parse_answer(gold)
    p = parse_answer(pred)
    if not g or not p:
        return False
    if mv.verify(g, p, float_rounding=FLOAT_ROUNDING, timeout_seconds=None):
        return True
    scaled = _percent_of(g, pred, gold)
    return bool(scaled) and bool(mv.verify(scaled, p, float_rounding=FLOAT_ROUNDING, timeout_seconds=None))


def warm_up() -> None:
    """Import math-verify/sympy/antlr and run one check, so the first real check is not slow."""
    answers_equivalent("\\frac{1}{2}", "0.5")

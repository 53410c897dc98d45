"""Answer extraction: formats, strictness, balanced braces, truncation, gold normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.verifier import extract_answer, normalize_gold
from rlvr.verifier.extract import extract_with_format, last_boxed


@pytest.mark.parametrize(
    "text,want",
    [
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{a} then \boxed{b}", "b"),  # the last box
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces do not count
        (r"\boxed{x^{2}+\frac{1}{y_{1}}}", r"x^{2}+\frac{1}{y_{1}}"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5$ and", "5"),
        (r"\boxed{1}, \boxed{2} and \boxed{3}", "1, 2, 3"),  # a trailing list of boxes
        (r"$\boxed{20}$ \boxed{143}", "143"),  # not a list: no separator word
        (r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}", "(2, 2), (6, 2)"),
        (r"\boxed{5", None),  # unterminated (truncated) box
        (r"\boxed{7} later \boxed{8", None),  # never fall back to an earlier box
        ("no box here", None),
    ],
)
def test_last_boxed(text, want):
    assert last_boxed(text) == want


@pytest.mark.parametrize(
    "response,fmt,strict,want",
    [
        ("Answer: 42", "answer_line", True, "42"),
        ("**Answer:** 42", "answer_line", True, "42"),
        ("Final Answer: The final answer is $28 \\%$. I hope it is correct.", "answer_line", True, "28 \\%"),
        ("blah. Final Answer: The volume of $X$ is 120. I hope it is correct.", "answer_line", True, "120"),
        ("steps\n#### 1,234", "gsm8k", True, "1234"),
        ("steps\n#### 18.", "gsm8k", True, "18"),
        (r"\boxed{3}", "gsm8k", True, None),  # strict: only the configured format
        (r"\boxed{3}", "gsm8k", False, "3"),  # non-strict falls back to the other formats
        ("The answer is 0.5.", "auto", False, "0.5"),  # non-strict sentence fallback
        ("The answer is 0.5.", "auto", True, None),
        ("I computed 17 and then 42", "auto", False, None),  # never the last number
        ("42", "auto", False, "42"),  # non-strict: a response that is only the answer is the answer
        ("42", "auto", True, None),  # strict: it is not an answer statement
        (r"$\frac{1}{12}$", "auto", False, r"\frac{1}{12}"),
        ("(1,4.5)", "boxed", False, "(1,4.5)"),
        (r"\[ 9. \]", "auto", False, "9"),
        ("5 dollars", "auto", False, "5 dollars"),
        ("Therefore $x \\geq 5$ is the solution.", "auto", False, "x \\geq 5"),  # one short line, one expression
        ("$1,000.99", "auto", False, "1,000.99"),  # a dollar sign, not maths
        ("$3$ apples and $4$ pears", "auto", False, None),  # two expressions: which one is a guess
        ("so the number is 10 which is 1,000.99", "auto", False, None),  # a sentence's last number: never
        ("We add them.\n$12$", "auto", False, None),  # more than one line: not only an answer
        ("3+4=7. \\boxed{7", "auto", False, None),  # a cut-off box is no answer, even as "an expression"
        (r"\boxed{1}\boxed{2}", "auto", True, "1, 2"),  # adjacent boxes are one list
        (r"\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}", "boxed", True, "(3, 3), (1, 1)"),
        ("Answer: 17\n\\boxed{18}", "auto", True, "18"),  # auto: the format that comes last
        ("\\boxed{18}\n#### 17", "auto", True, "17"),
        ("<think>\\boxed{1}</think> so \\boxed{2}", "auto", True, "2"),
        ("<think> still thinking \\boxed{1}", "auto", True, None),  # unclosed think: no answer (strict)
        ("<think> still thinking \\boxed{1}", "auto", False, "1"),
        ("", "auto", False, None),
    ],
)
def test_extract_formats(response, fmt, strict, want):
    assert extract_answer(response, answer_format=fmt, strict=strict) == want


@pytest.mark.parametrize("text", [
    " " * 20000, "Answer" + " " * 19990 + "x", "final answer" + " " * 19980, "The answer is" + " " * 19980,
    "\n" * 20000, "\\boxed{1}" * 2200, "$" * 20000, "\\(" * 10000, "Answer: x" + " \t" * 9990 + "I hope",
])
def test_extraction_is_linear_time(text):
    """20,000 characters of whitespace (or of one repeated token) extract in milliseconds (issue #13)."""
    import time

    t0 = time.perf_counter()
    for fmt in ("auto", "answer_line"):
        extract_answer(text, fmt, strict=False)
    assert time.perf_counter() - t0 < 0.25


def test_gold_lists_are_joined():
    assert normalize_gold(r"$\boxed{1}\boxed{2}$") == "1, 2"
    assert normalize_gold("$21,16$ or $11$") == "21,16, 11"


def test_extract_reports_format():
    assert extract_with_format("x\n#### 5")[1] == "gsm8k"
    assert extract_with_format("The answer is 5")[1] == "answer_is"
    assert extract_with_format("$5$")[1] == "only_answer"
    with pytest.raises(ValueError):
        extract_answer("x", answer_format="nope")


@pytest.mark.parametrize(
    "gold,want",
    [
        ("42", "42"),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
        ("#### 1,234", "1234"),
        (r"So the answer is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"$x^2$", "x^2"),
        ("  7.  ", "7"),
    ],
)
def test_normalize_gold(gold, want):
    assert normalize_gold(gold) == want


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=300))
def test_extraction_never_raises(text):
    for fmt in ("auto", "boxed", "answer_line", "gsm8k"):
        for strict in (False, True):
            out = extract_answer(text, fmt, strict)
            assert out is None or isinstance(out, str)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=200), st.from_regex(r"[0-9a-z]([0-9a-z+\-*/^ ]{0,18}[0-9a-z])?", fullmatch=True))
def test_a_final_box_is_always_found(prefix, answer):
    for tag in ("\\boxed", "\\fbox", "</think>", "<think>"):
        prefix = prefix.replace(tag, "")
    assert extract_answer(prefix + " \\boxed{" + answer + "}", "boxed", strict=True) == answer


@pytest.mark.parametrize("gold,pred,same", [
    ("18", "9 + 9", False), ("-1", "6 - 7", False), ("8", "2^3", False), ("42", "6 \\times 7", False),
    ("12", "(3+1)\\cdot 3", False), ("2", "2 - 0", False),
    ("18", "18", True), ("-4", "-4", True), ("0.5", "1/2", True), ("0.5", "\\frac{1}{2}", True),
    ("1500", "1.5 \\times 10^3", True), ("1000", "10^3", True), ("1000", "1,000", True), ("7", "7 dollars", True),
    ("x+1", "1+x", True),  # the rule is for numeric gold answers only
])
def test_numeric_gold_needs_an_evaluated_answer(gold, pred, same):
    """A policy rewarded for "The answer is: 9 + 9" learns to restate the question (measured on SmolLM2)."""
    from rlvr.verifier.equivalence import answers_equivalent

    assert answers_equivalent(gold, pred) is same

"""Hostile inputs for the verifier: each must come back as timeout / too_long / error within its limit
(or `wrong` when a cheap rule refuses it before any computation: unevaluated arithmetic such as
(10^{10})^{10^{10}} for a numeric gold answer; see rlvr/verifier/equivalence.py).

Built in code (megabyte strings and lone surrogates do not belong in a data file). Each entry is
(name, response, gold). Sizes assume ``max_chars=20000``.
"""

from __future__ import annotations

MB = 1024 * 1024
HOSTILE_REASONS = {"timeout", "too_long", "error", "wrong"}


def B(s: str) -> str:
    return "\\boxed{" + s + "}"


def hostile_cases() -> list[tuple[str, object, object]]:
    c: list[tuple[str, object, object]] = []

    def add(name: str, resp: object, gold: object = "5") -> None:
        c.append((name, resp, gold))

    # huge powers / numbers that sympy would evaluate eagerly (refused up front -> error)
    add("tower 9^9^9^9", B("9^9^9^9"))
    add("tower 9^{9^{9^{9}}}", B("9^{9^{9^{9}}}"))
    add("tower of 2s", B("2^{2^{2^{2^{2^{2}}}}}"))
    add("googolplex", B("10^{10^{100}}"))
    add("tower 3^3^3^3^3", "Answer: 3^3^3^3^3")
    add("tower 2^{2^{100}}", B("2^{2^{100}}"))
    add("tower in #### line", "#### 7^7^7^7")
    add("tower with spaces", B("9 ^ { 9 ^ { 9 } }"))
    add("8-digit exponent", B("99999999^{99999999}"))
    add("7-digit exponent", B("10^{1000000}"))
    add("5-digit exponent", B("2^{99999}"))
    add("exponent in gold", B("5"), "10^{123456}")
    add("factorial 100000!", B("100000!"))
    add("factorial 123456789!", "Answer: 123456789!")
    add("double factorial 99999!!", B("9999!!"))
    # expressions that make sympy hang (killed at the deadline -> timeout)
    add("power of power (10^10)^(10^10)", B("(10^{10})^{10^{10}}"))
    add("binomial(10^6, 500000)", B("\\binom{10^{6}}{500000}"))
    add("Gamma(10^7)", B("\\Gamma(10^{7})"))
    add("hard integral vs series", B("\\int_0^{x} e^{t^{7}} \\sin(t^{5}) \\cos(t^3)\\, dt"),
        "\\sum_{n=1}^{\\infty} \\frac{\\sin(n^{3})}{n^{1/2}}")
    add("trig powers", B("\\sin(x)^{77}\\cos(x)^{91}"), "\\tan(x)^{13}")
    add("trivariate expansion", B("(x+y+z)^{60}"), "(x+y+z)^{59}(x+y+z+1)")
    add("factorial of a power", B("(10^{6})!"))
    # deep nesting (refused -> error, or too_long)
    add("nested braces x5000", B("{" * 5000 + "1" + "}" * 5000), "1")
    add("nested braces x45", B("{" * 45 + "1" + "}" * 45), "1")
    add("nested parens x500", B("(" * 500 + "1" + ")" * 500), "1")
    add("nested parens x60", B("(" * 60 + "1" + ")" * 60), "1")
    add("nested brackets x300", B("[" * 300 + "1" + "]" * 300), "1")
    add("nested frac x200", B("\\frac{1}{" * 200 + "1" + "}" * 200), "1")
    add("nested frac x50", B("\\frac{1}{" * 50 + "2" + "}" * 50), "1")
    add("nested sqrt x100", B("\\sqrt{" * 100 + "2" + "}" * 100), "2")
    add("nested sqrt x45", B("\\sqrt{" * 45 + "2" + "}" * 45), "2")
    add("nested left/right x300", B("\\left(" * 300 + "x" + "\\right)" * 300), "x")
    add("nested begin/end x100", B("\\begin{pmatrix}" * 100 + "1" + "\\end{pmatrix}" * 100), "1")
    add("nested exponents x50", B("x^{" * 50 + "2" + "}" * 50), "x")
    add("nested braces in gold", B("1"), "{" * 100 + "1" + "}" * 100)
    # long strings (rejected before any worker sees them -> too_long)
    add("1 MB of 'a'", "a" * MB)
    add("1 MB number in a box", B("1" * MB))
    add("2 MB of digits", "9" * (2 * MB))
    add("megabyte of \\frac{", "\\frac{" * 200000)
    add("megabyte of x^", "x^" * 500000)
    add("megabyte of newlines", "\n" * MB)
    add("megabyte of emoji", "\U0001F600" * 300000)
    add("megabyte gold", B("1"), "1" * MB)
    add("3000 boxes", "\\boxed{1}" * 3000, "1")
    add("5000-char answer", B("1" * 5000), "1")
    add("answer sum of 3000 ones", B("1+" * 3000 + "1"), "3001")
    add("30x30 symbolic matrix", B("\\begin{pmatrix}" + "\\\\".join(
        "&".join(f"x^{{{i * j}}}" for j in range(30)) for i in range(30)) + "\\end{pmatrix}"), "1")
    add("Answer: line 19000 spaces", "Answer: " + " " * 19000 + "x" * 2500, "x")
    # invalid unicode (lone surrogates cannot be encoded -> error)
    add("lone high surrogate", "\ud800")
    add("lone low surrogate", "\udfff")
    add("half an emoji after a box", B("5") + "\ud83d")
    add("surrogate inside the box", B("\ud800"))
    add("surrogateescape bytes", "\udc80\udc81" + B("5"))
    add("surrogate in gold", B("5"), "5\ud800")
    # not strings at all (-> error)
    add("response is None", None)
    add("gold is an int", B("5"), 5)
    add("response is bytes", b"\\boxed{5}")
    add("response is a list", ["\\boxed{5}"])
    return c

r"""Answer extraction: which part of a model response is "the answer".

Formats (``answer_format``):

- ``boxed``: the last ``\boxed{...}`` (or ``\fbox{...}``, or ``\boxed 5``) with balanced braces.
  If the last one is unterminated (a truncated generation) there is no answer: we never fall back
  to an earlier, intermediate box. A trailing run of boxes joined by ``,``/``;``/``and``/``or``
  (``\boxed{1}, \boxed{2}``) is read as one list answer.
- ``answer_line``: the last line that starts with ``Answer:`` or ``Final Answer:`` (Minerva's
  ``Final Answer: The final answer is $X$. I hope it is correct.`` included).
- ``gsm8k``: the last ``#### X``.
- ``auto``: whichever of the three explicit formats occurs last in the response.

``strict=True`` accepts only the configured format (``auto``: only the three explicit formats).
``strict=False`` additionally falls back to the other explicit formats, then to a
``the (final) answer is X`` sentence, and last to a response that is *only* an answer: a bare
expression (``$\frac{1}{12}$``, ``(1,4.5)``, ``5 dollars``, ``-5``) or one short line whose only
mathematics is one delimited expression (``Therefore $x \geq 5$ is the solution.``). Neither mode ever
takes "the last number in the text": a multi-line or wordy response with no answer statement gets
``no_answer``, not a lucky match.

Multi-part answers: adjacent boxes or boxes joined by ``,``/``;``/``and``/``or``/``for part (a) and``
(``\boxed{1}\boxed{2}``), and ``$a$ or $b$`` spans, are read as one comma list, which math-verify then
compares as a tuple (or a set when either side is one).

Reasoning models: if the response has ``</think>``, only the text after the last one is read; an
opened but never closed ``<think>`` block has no answer in strict mode.

All scanning here is linear in the input (no backtracking-prone regexes over the whole text).
"""

from __future__ import annotations

import re

from .result import ANSWER_FORMATS

_BOX_CMDS = ("\\boxed", "\\fbox")
_SEP_TEXT = re.compile(r"\\(?:text|textrm|mathrm|mbox)\{([^{}]{0,20})\}")
_SEP_STRIP = re.compile(r"\\q?quad|\\[,;!: ]|\$|\\\[|\\\]|\\\(|\\\)|\\|\s")
_SEP_PART = re.compile(r"for\s*(?:the\s*)?(?:part|case)\s*\(?\w{1,3}\)?", re.IGNORECASE)
_SEP_WORDS = {",", ";", "and", "or", ",and", ",or"}
# One line at a time, and never two overlapping quantifiers side by side: the old single regex
# (``^[ \t>#*_-]*(?:\*\*|__)?[ \t]*...``) took 27 s on 20,000 spaces (issue #13).
_ANSWER_LINE = re.compile(
    r"[ \t>#*_-]*(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t*_]*[:：][ \t*_]*(?P<ans>.*)", re.IGNORECASE
)
_FINAL_ANSWER = re.compile(r"\bfinal[ \t]+answer[ \t*_]*[:：][ \t*_]*(?P<ans>.*)", re.IGNORECASE)
_GSM8K = re.compile(r"####[ \t]*(?P<ans>[^\n]*)")
_ANSWER_IS = re.compile(r"\b(?:final[ \t]+)?answer[ \t]+is[ \t]*[:：]?[ \t]*(?P<ans>[^\n]*)", re.IGNORECASE)
_HOPE = re.compile(r"I hope it is correct|<\|", re.IGNORECASE)
_LEAD_FINAL = re.compile(r"^(?:the\s+)?final\s+answer\s+is\s*[:：]?\s*", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _box_spans(text: str) -> list[tuple[int, int, int, int]]:
    """All box commands as (cmd_start, content_start, content_end, end); end == -1 if unbalanced."""
    spans = []
    i = 0
    n = len(text)
    nxt = {c: text.find(c) for c in _BOX_CMDS}  # next position of each (-1: none left), searched again once passed
    while True:
        for c in _BOX_CMDS:
            if 0 <= nxt[c] < i:
                nxt[c] = text.find(c, i)
        hits = [(p, c) for c, p in nxt.items() if p >= 0]
        if not hits:
            return spans
        pos, cmd = min(hits)
        j = pos + len(cmd)
        if j < n and (text[j].isalpha()):  # \boxedtext or \fboxsep: another command
            i = j
            continue
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "{":
            depth = 0
            k = j
            end = -1
            while k < n:
                ch = text[k]
                if ch == "\\" and k + 1 < n and text[k + 1] in "{}":
                    k += 2
                    continue
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == 0:
                        end = k
                        break
                k += 1
            if end < 0:
                spans.append((pos, j + 1, n, -1))
                return spans
            spans.append((pos, j + 1, end, end + 1))
            i = end + 1
        elif j > pos + len(cmd) and j < n and text[j] not in "$\n":
            # "\boxed 5" form: the token up to whitespace or $
            k = j
            while k < n and text[k] not in " \t\n$":
                k += 1
            spans.append((pos, j, k, k))
            i = k
        else:
            i = j


def _is_list_separator(sep: str) -> bool:
    """Whether the text between two answers joins them into one list (nothing, ", ", "and", ...)."""
    if len(sep) > 40:
        return False
    if not sep.strip():  # \boxed{1}\boxed{2}: adjacent answers are one list (math-verify reads all boxes)
        return True
    core = _SEP_STRIP.sub("", _SEP_PART.sub("", _SEP_TEXT.sub(r" \1 ", sep))).lower()
    return core in _SEP_WORDS


def last_boxed(text: str) -> str | None:
    """Content of the last balanced box (a trailing list of boxes joined with ", "), or None."""
    spans = _box_spans(text)
    if not spans or spans[-1][3] < 0:
        return None
    parts = [text[spans[-1][1] : spans[-1][2]]]
    for prev, cur in zip(reversed(spans[:-1]), reversed(spans[1:])):
        if not _is_list_separator(text[prev[3] : cur[0]]):
            break
        parts.append(text[prev[1] : prev[2]])
    return ", ".join(p.strip() for p in reversed(parts)).strip()


def _clean(ans: str) -> str | None:
    ans = ans.strip()
    if "\\boxed" in ans or "\\fbox" in ans:
        inner = last_boxed(ans)
        if inner is not None:
            ans = inner
    ans = _strip_period(ans.strip().strip("*").strip())
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
            inner = ans[len(left) : len(ans) - len(right)]
            if left not in inner:
                ans = inner.strip()
            break
    ans = _strip_period(ans)
    return ans or None


def _strip_period(ans: str) -> str:
    """Drop one sentence-ending period/comma (not an ellipsis)."""
    ans = ans.rstrip()
    if ans.endswith(("...", "\\ldots", "\\dots", "\\cdots")):
        return ans
    if ans[-1:] in (".", "。", ",", ";"):
        ans = ans[:-1].rstrip()
    return ans


def _cut_hope(ans: str) -> str:
    """Drop Minerva's "I hope it is correct." (or a leaked chat token) and everything after it."""
    m = _HOPE.search(ans)
    return ans[: m.start()] if m else ans


def _last_answer_line(text: str) -> tuple[re.Match | None, int]:
    """The last line's ``Answer:`` match (line start, or "Final Answer:" anywhere) and its offset."""
    end = len(text)
    while end >= 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        if "answer" in line.lower():
            m = _ANSWER_LINE.match(line) or _FINAL_ANSWER.search(line)
            if m:
                return m, start + m.start()
        end = start - 1
    return None, -1


def _answer_line(text: str) -> tuple[str | None, int]:
    last, pos = _last_answer_line(text)
    if last is None:
        return None, -1
    ans = _cut_hope(last.group("ans"))
    ans = _LEAD_FINAL.sub("", ans.strip())
    if " is " in ans:  # "Final Answer: The largest $n$ is 34." -> "34"
        ans = ans.rsplit(" is ", 1)[1]
    return _clean(ans), pos


def _gsm8k(text: str) -> tuple[str | None, int]:
    last = None
    for m in _GSM8K.finditer(text):
        last = m
    if last is None:
        return None, -1
    ans = _clean(last.group("ans"))
    if ans is not None:
        ans = _THOUSANDS.sub("", ans.replace("\\$", "").replace("$", "")).strip() or None
    return ans, last.start()


def _boxed(text: str) -> tuple[str | None, int]:
    spans = _box_spans(text)
    if not spans:
        return None, -1
    ans = last_boxed(text)
    return (_clean(ans) if ans is not None else None), spans[-1][0]


def _answer_is(text: str) -> str | None:
    last = None
    for m in _ANSWER_IS.finditer(text):
        last = m
    if last is None:
        return None
    ans = _cut_hope(last.group("ans"))
    # the sentence ends at ". " (not at a decimal point)
    cut = re.search(r"\.(\s|$)", ans)
    if cut:
        ans = ans[: cut.start()]
    return _clean(ans)


_EXTRACTORS = {"boxed": _boxed, "answer_line": _answer_line, "gsm8k": _gsm8k}

# "Only an answer": limits that keep a chain of thought from passing for one.
_ONLY_MAX_CHARS = 1000  # whole response, delimited maths included (a matrix is long)
_ONLY_MAX_WORDS = 12  # words of text around the one delimited expression
_BARE_MAX_CHARS = 200  # an undelimited expression
_NOT_ONLY = ("\\boxed", "\\fbox", "####", "<think>")  # a failed explicit format is no answer
_TEXT_CMD = re.compile(r"\\(?:text\w*|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_CURRENCY = re.compile(r"^\$\s*\d|\d\s*\$$")
_WORD = re.compile(r"[A-Za-z]{2,}")
_MATH_WORDS = frozenset("sin cos tan sec csc cot log ln exp sqrt pi inf infty oo and or".split())
_PROSE = frozenset("is are was be the this that which so then therefore thus but not we it if let answer final".split())


def _closing_dollar(text: str, i: int) -> int:
    """Index of the next ``$`` at or after ``i`` that is not ``\\$``, or -1."""
    while True:
        j = text.find("$", i)
        if j <= 0 or text[j - 1] != "\\":
            return j
        i = j + 1


def _math_spans(text: str) -> list[tuple[int, int, str]] | None:
    """Delimited maths ($$..$$, $..$, \\[..\\], \\(..\\)) as (start, end, inner); None if one is left open."""
    spans: list[tuple[int, int, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] in ("[", "("):
            close = "\\]" if text[i + 1] == "[" else "\\)"
            j, width = text.find(close, i + 2), 2
        elif ch == "\\":
            i += 2  # an escaped character (\\$ is a dollar sign, not maths)
            continue
        elif text.startswith("$$", i):
            j, width = text.find("$$", i + 2), 2
        elif ch == "$":
            j, width = _closing_dollar(text, i + 1), 1
        else:
            i += 1
            continue
        if j < 0:
            return None
        spans.append((i, j + width, text[i + width : j]))
        i = j + width
    return spans


def _is_bare_expression(text: str) -> bool:
    """One short line of maths, units or a word or two (``5 dollars``, ``Monday``); not a sentence."""
    if "\n" in text or len(text) > _BARE_MAX_CHARS:
        return False
    words = [w.lower() for w in _WORD.findall(_LATEX_CMD.sub(" ", _TEXT_CMD.sub(" ", text)))]
    words = [w for w in words if w not in _MATH_WORDS]
    return len(words) <= 2 and not _PROSE.intersection(words)


def _only_answer(text: str) -> str | None:
    """The answer of a response that is only an answer (see the module doc), else None."""
    t = text.strip()
    if not t or len(t) > _ONLY_MAX_CHARS or any(m in t for m in _NOT_ONLY):
        return None
    spans = _math_spans(t)
    if spans is None and _CURRENCY.search(t) and t.count("$") == 1:  # "$1,000.99": a dollar sign, not maths
        t, spans = t.replace("$", ""), []
    if spans is None:
        return None
    if not spans:
        return _clean(t) if _is_bare_expression(t) else None
    if not all(_is_list_separator(t[a[1] : b[0]]) for a, b in zip(spans, spans[1:])):
        return None  # several separate expressions: which one is the answer is a guess
    around = t[: spans[0][0]] + " " + t[spans[-1][1] :]
    if "\n" in around or any(ch.isdigit() for ch in around) or len(_WORD.findall(around)) > _ONLY_MAX_WORDS:
        return None
    return _clean(", ".join(inner.strip() for _, _, inner in spans))


def _answer_region(response: str, strict: bool) -> str | None:
    close = response.rfind("</think>")
    if close >= 0:
        return response[close + len("</think>") :]
    if strict and "<think>" in response:
        return None
    return response


def extract_answer(response: str, answer_format: str = "auto", strict: bool = False) -> str | None:
    """The answer string of ``response`` in ``answer_format`` (see module doc), or None."""
    return extract_with_format(response, answer_format, strict)[0]


def extract_with_format(
    response: str, answer_format: str = "auto", strict: bool = False
) -> tuple[str | None, str | None]:
    """Like :func:`extract_answer` but also says which format matched (``answer_is`` for the fallback)."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    if not isinstance(response, str):
        return None, None
    text = _answer_region(response, strict)
    if text is None:
        return None, None
    if answer_format != "auto":
        ans, _ = _EXTRACTORS[answer_format](text)
        if ans is not None or strict:
            return ans, (answer_format if ans is not None else None)
    found = []
    for name, fn in _EXTRACTORS.items():
        ans, pos = fn(text)
        if ans is not None:
            found.append((pos, name, ans))
    if found:
        _, name, ans = max(found)
        return ans, name
    if strict:
        return None, None
    ans = _answer_is(text)
    if ans is not None:
        return ans, "answer_is"
    ans = _only_answer(text)
    return ans, ("only_answer" if ans is not None else None)


def normalize_gold(gold: str) -> str:
    """Reduce a gold answer to the bare answer: after ``####`` (GSM8K), else the last box, else as is."""
    g = gold.strip()
    if "####" in g:
        g = g.rsplit("####", 1)[1].strip()
        g = _THOUSANDS.sub("", g).rstrip(".").strip()
    elif "\\boxed" in g or "\\fbox" in g:
        inner = last_boxed(g)
        if inner is not None:
            g = inner
    else:
        spans = _math_spans(g) or []
        if len(spans) > 1 and all(_is_list_separator(g[a[1] : b[0]]) for a, b in zip(spans, spans[1:])):
            g = ", ".join(inner.strip() for _, _, inner in spans)  # "$21,16$ or $11$"
    return _clean(g) or ""

"""Load (prompt, gold answer) pairs from GSM8K-, MATH- or plain-style files.

Everything goes through the HF ``datasets`` library, so local ``.jsonl``,
``.json`` and ``.parquet`` files and hub datasets share one code path.

Every other column of a row is kept on its problem dict under its own name, so
that reward functions written for TRL (which receive each dataset column by
name) read them unchanged. The prompt is kept verbatim (the ``raw`` template
sends it as is; the other templates strip it); the gold answer is stripped.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

FORMATS = ("auto", "gsm8k", "math", "plain")
BAD_ROW_POLICIES = ("error", "skip")
# Local file suffix -> the HF datasets builder that reads it.
BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}

# Default prompt field per format: the first name present in the file wins,
# so a MATH-style file with "question" instead of "problem" still loads.
PROMPT_CANDIDATES = {
    "gsm8k": ("question", "problem", "prompt"),
    "math": ("problem", "question", "prompt"),
    "plain": ("question", "problem", "prompt"),
}

_GSM8K_MARKER = "####"
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")


@dataclass
class ProblemSet:
    """What ``load_problem_set`` read.

    ``problems``: ``[{"prompt", "answer", **other columns}]``; ``n_skipped``: rows dropped by
    ``on_bad_row="skip"``; ``skipped``: one ``file:row:field: problem``
    message per dropped row; ``format``: the format used ("auto" resolved).
    """

    problems: list[dict]
    format: str
    source: str
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)


def load_problems(
    path: str | os.PathLike,
    *,
    prompt_key: str | None = None,
    answer_key: str | None = None,
    format: str = "auto",
    on_bad_row: str = "error",
    limit: int | None = None,
    split: str = "train",
    subset: str | None = None,
) -> list[dict]:
    """Read problems as ``[{"prompt": str, "answer": str, **other columns}]``.

    Same arguments as ``load_problem_set``, which also reports the rows that
    ``on_bad_row="skip"`` dropped; this returns only the problems.
    """
    return load_problem_set(
        path,
        prompt_key=prompt_key,
        answer_key=answer_key,
        format=format,
        on_bad_row=on_bad_row,
        limit=limit,
        split=split,
        subset=subset,
    ).problems


def load_problem_set(
    path: str | os.PathLike,
    *,
    prompt_key: str | None = None,
    answer_key: str | None = None,
    format: str = "auto",
    on_bad_row: str = "error",
    limit: int | None = None,
    split: str = "train",
    subset: str | None = None,
) -> ProblemSet:
    """Read problems from a local file or a hub dataset; see ``ProblemSet``.

    ``path``: a local ``.jsonl``/``.json``/``.parquet`` file, or, when it is
    not an existing file, has none of those suffixes and does not start with
    ``/``, ``.`` or ``~``, a Hugging Face hub dataset name loaded with
    ``load_dataset(path, subset, split=split)`` (needs network access; without
    it the hub error propagates; ``split`` and ``subset`` apply to hub
    datasets only). A missing local file raises ``FileNotFoundError``.

    ``format``: ``gsm8k`` takes the gold answer after the last ``####`` in the
    answer field, with commas in numbers removed ("1,000" -> "1000");
    ``math`` takes the answer field when present, otherwise the content of
    the last ``\\boxed{...}`` in ``solution``; ``plain`` takes the answer field
    as is (stripped). ``auto`` picks ``gsm8k`` when the answer field carries
    ``####``, else ``math`` when the file has ``problem`` or ``solution``
    fields, else ``plain``.

    ``prompt_key``/``answer_key`` default per format: the prompt is the first
    of ``problem``/``question``/``prompt`` present (``problem`` first for
    math, ``question`` first otherwise); the answer is ``answer`` (math:
    ``answer``, falling back to ``solution``). A field absent from the whole
    file raises ``ValueError`` regardless of ``on_bad_row``.

    Rows whose fields are missing, empty or not strings, or whose answer
    cannot be extracted, raise ``ValueError("file:row:field: problem")``
    (``row`` is the 1-based record number) when ``on_bad_row="error"``, or are
    dropped and counted when ``on_bad_row="skip"``. ``limit`` caps the number
    of problems returned (reading stops once it is reached).
    """
    _check_options(format, on_bad_row, limit)
    if isinstance(path, str) and path.startswith("reasoning_gym:"):  # generated offline: see reasoning_gym.py
        from rlvr.data.reasoning_gym import generate

        return ProblemSet(problems=generate(path, split, limit=limit), format="plain", source=path)
    dataset, source = _open(path, split, subset)
    columns = list(dataset.column_names)
    fmt = _detect_format(dataset, columns, answer_key) if format == "auto" else format
    prompt_field = prompt_key or _first_present(PROMPT_CANDIDATES[fmt], columns)
    answer_fields = [answer_key] if answer_key else _default_answer_fields(fmt, columns)
    _require_columns(source, columns, [_column(prompt_field, columns)], "prompt_key")
    _require_columns(source, columns, [_column(name, columns) for name in answer_fields], "answer_key")

    result = ProblemSet(problems=[], format=fmt, source=source)
    _read_rows(result, dataset, prompt_field, answer_fields, on_bad_row, limit)
    result.n_skipped = len(result.skipped)
    if result.n_skipped:
        logger.warning("skipped %d bad rows in %s; first: %s", result.n_skipped, source, result.skipped[0])
    return result


def _read_rows(result: ProblemSet, dataset, prompt_field: str, answer_fields: list[str], on_bad_row: str,
               limit: int | None) -> None:
    """Parse ``dataset``'s rows into ``result`` (problems, and skipped-row messages), up to ``limit``."""
    for row_number, row in enumerate(dataset, start=1):
        if limit is not None and len(result.problems) >= limit:
            break
        try:
            result.problems.append(
                _parse_row(row, result.format, prompt_field, answer_fields, f"{result.source}:{row_number}")
            )
        except ValueError as error:
            if on_bad_row == "error":
                raise
            result.skipped.append(str(error))


def _check_options(format: str, on_bad_row: str, limit: int | None) -> None:
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; valid formats: {', '.join(FORMATS)}")
    if on_bad_row not in BAD_ROW_POLICIES:
        raise ValueError(f"unknown on_bad_row {on_bad_row!r}; valid values: {', '.join(BAD_ROW_POLICIES)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")


def _open(path: str | os.PathLike, split: str, subset: str | None):
    """Return (dataset, source label used in error messages)."""
    import datasets  # heavy import; only paid by callers that load files

    text = os.fspath(path)
    local = Path(text).expanduser()
    if not _looks_local(text, local):
        return datasets.load_dataset(text, subset, split=split), f"{text}[{split}]"
    if not local.exists():
        raise FileNotFoundError(f"problem file not found: {text}")
    if not local.is_file():
        raise ValueError(f"expected a data file, got a directory: {text}")
    builder = BUILDERS.get(local.suffix.lower())
    if builder is None:
        raise ValueError(
            f"unsupported file type {local.suffix!r} for {text}; supported: {', '.join(BUILDERS)}"
        )
    try:
        dataset = datasets.load_dataset(builder, data_files=str(local), split="train")
    except Exception as error:  # datasets wraps parse errors in many types
        raise ValueError(f"could not read {text} as {builder}: {error}") from error
    return dataset, text


def _looks_local(text: str, local: Path) -> bool:
    return local.exists() or local.suffix.lower() in BUILDERS or text.startswith(("/", ".", "~"))


def _detect_format(dataset, columns: list[str], answer_key: str | None) -> str:
    answer_field = answer_key or "answer"
    if answer_field in columns:
        # Only a peek: GSM8K marks every answer, so a few rows are enough.
        head = dataset.select(range(min(20, len(dataset))))[answer_field]
        if any(isinstance(value, str) and _GSM8K_MARKER in value for value in head):
            return "gsm8k"
    if "problem" in columns or "solution" in columns:
        return "math"
    return "plain"


def _first_present(candidates: tuple[str, ...], columns: list[str]) -> str:
    return next((name for name in candidates if name in columns), candidates[0])


def _default_answer_fields(fmt: str, columns: list[str]) -> list[str]:
    if fmt != "math":
        return ["answer"]
    present = [name for name in ("answer", "solution") if name in columns]
    return present or ["answer"]


def _column(name: str, columns: list[str]) -> str:
    """The top-level column a (possibly dotted, nested) field name reads: ``reward_model.ground_truth``
    reads ``reward_model``; a column whose own name has a dot is taken as is."""
    return name if name in columns else name.split(".")[0]


def _require_columns(source: str, columns: list[str], names: list[str], option: str) -> None:
    for name in names:
        if name not in columns:
            raise ValueError(
                f"{source}: no field {name!r} in any row (fields: {', '.join(columns) or 'none'}); set {option}"
            )


def _parse_row(row: dict, fmt: str, prompt_field: str, answer_fields: list[str], where: str) -> dict:
    """``{"prompt", "answer"}`` plus every other column of ``row`` as is (the prompt's column, and any
    column named ``prompt`` or ``answer``, are replaced by the parsed values)."""
    prompt = _string_field(row, prompt_field, where, strip=False)
    if fmt == "math":
        answer = _math_answer(row, answer_fields, where)
    else:
        answer_field = answer_fields[0]
        raw = _string_field(row, answer_field, where)
        answer = _gsm8k_answer(raw, f"{where}:{answer_field}") if fmt == "gsm8k" else raw
    prompt_column = prompt_field if prompt_field in row else prompt_field.split(".")[0]
    extra = {k: v for k, v in row.items() if k not in (prompt_column, "prompt", "answer")}
    return {"prompt": prompt, "answer": answer, **extra}


def _lookup(row: dict, name: str):
    """A field by name; a dotted name reaches into nested fields (verl rows: ``reward_model.ground_truth``)."""
    if name in row:
        return row[name]
    value = row
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _chat_text(value):
    """A chat-message list (verl rows: ``prompt: [{"role": "user", "content": ...}]``) -> the content of
    its last user message; any other value unchanged."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        users = [m for m in value if m.get("role", "user") == "user"]
        return (users or value)[-1]["content"]
    return value


def _string_field(row: dict, name: str, where: str, strip: bool = True) -> str:
    value = _chat_text(_lookup(row, name))
    if value is None:
        raise ValueError(f"{where}:{name}: missing")
    if not isinstance(value, str):
        # A bad row is a data error, reported like every other bad row.
        raise ValueError(  # noqa: TRY004
            f"{where}:{name}: expected a string, got {type(value).__name__} {value!r}"
        )
    if not value.strip():
        raise ValueError(f"{where}:{name}: empty")
    return value.strip() if strip else value


def _gsm8k_answer(text: str, where: str) -> str:
    if _GSM8K_MARKER not in text:
        raise ValueError(f"{where}: no '{_GSM8K_MARKER}' final-answer marker")
    answer = _DIGIT_COMMA.sub("", text.rsplit(_GSM8K_MARKER, 1)[1]).strip()
    if not answer:
        raise ValueError(f"{where}: empty final answer after '{_GSM8K_MARKER}'")
    return answer


def _math_answer(row: dict, answer_fields: list[str], where: str) -> str:
    """The first usable field wins: ``answer`` before ``solution`` by default.

    A value with a ``\\boxed{}`` yields the box's content, so both a bare
    answer field and a worked solution work under either name.
    """
    first_error = None
    for name in answer_fields:
        try:
            value = _string_field(row, name, where)
            return _unbox(value, f"{where}:{name}") if name == "solution" or "\\boxed" in value else value
        except ValueError as error:
            first_error = first_error or error
    raise first_error


def _unbox(text: str, where: str) -> str:
    content = last_boxed(text)
    if content is None:
        raise ValueError(f"{where}: no \\boxed{{...}} with balanced braces")
    if not content.strip():
        raise ValueError(f"{where}: empty \\boxed{{}}")
    return content.strip()


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces kept.

    Returns None when there is no box or its braces never close.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    command = "\\boxed" if text.startswith("\\boxed", start) else "\\fbox"
    rest = text[start + len(command) :].lstrip()
    if not rest.startswith("{"):
        # "\boxed 5" (no braces) occurs in MATH: the answer is the next token.
        token = rest.split(maxsplit=1)
        return token[0].rstrip("$.") if token else None
    depth = 0
    for j, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[1:j]
    return None

"""Problems generated offline by `reasoning-gym` (Apache-2.0, PyPI), as rlvr problem dicts.

A data path of the form

    reasoning_gym:NAME[?key=value&key=value...]

names a reasoning-gym dataset (``basic_arithmetic``, ``gsm_symbolic``, ``chain_sum``, ...) and its
config fields, e.g. ``reasoning_gym:basic_arithmetic?min_terms=2&max_terms=3&max_digits=2``. Values are
read as int, float, true/false, or a comma-separated list (``operators=+,-``). Two keys are rlvr's own:
``size`` (problems to generate for the split: default 5000 for ``train``, 500 otherwise) and ``seed``
(default 0). Each split draws from its own seed, derived from (name, seed, split), so the same path gives
the same problems in every run and in `rlvr eval` (whose default split, ``test``, is the train config's
``data.eval_split``), whatever the run's own seed. Prompts that repeat inside a split are dropped, and
`rlvr.data.problem_sets.load_train_heldout` also drops every training prompt that is a held-out prompt:
held-out accuracy is measured on problems the policy never trained on.

Avoid a ``.`` in the path (write float values another way, or not at all): the config check treats a
path with a file suffix as a local file.

Each problem: ``{"prompt": question, "answer": answer, "source": "reasoning_gym:NAME"}``. reasoning-gym
answers these datasets with a bare integer string, which the verifier compares with the number in the
response's ``\\boxed{}`` (or ``Answer:`` line).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "reasoning_gym:"
DEFAULT_SIZE = {"train": 5000}
DEFAULT_OTHER_SIZE = 500
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_WS = re.compile(r"\s+")


def is_reasoning_gym_path(path) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def parse_spec(path: str) -> tuple[str, dict]:
    """``reasoning_gym:NAME?k=v&...`` -> (NAME, {k: parsed v}). ValueError on a malformed path."""
    if not is_reasoning_gym_path(path):
        raise ValueError(f"not a reasoning-gym path (expected {PREFIX}NAME[?key=value&...]): {path!r}")
    body = path[len(PREFIX):]
    name, _, query = body.partition("?")
    if not _NAME.match(name):
        raise ValueError(f"{path}: bad reasoning-gym dataset name {name!r}")
    params: dict = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{path}: expected key=value, got {item!r}")
        params[key] = _parse_value(value)
    return name, params


def _parse_value(text: str):
    if "," in text:
        return [_parse_value(part) for part in text.split(",") if part != ""]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def split_seed(name: str, seed: int, split: str) -> int:
    """The generator seed of one split: distinct per split, stable across runs and machines."""
    digest = hashlib.sha256(f"rlvr/reasoning_gym/{name}/{seed}/{split}".encode()).hexdigest()
    return int(digest[:8], 16)


def _key(prompt: str) -> str:
    return _WS.sub(" ", prompt.strip()).lower()


def generate(path: str, split: str = "train", *, limit: int | None = None) -> list[dict]:
    """The problems of ``split`` for ``path``, deduplicated (first occurrence kept), at most ``limit``."""
    name, params = parse_spec(path)
    size = int(params.pop("size", DEFAULT_SIZE.get(split, DEFAULT_OTHER_SIZE)))
    seed = int(params.pop("seed", 0))
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError("reasoning-gym data needs the `reasoning-gym` package: "
                          "pip install reasoning-gym  (or: pip install 'rlvr[smollm2]')") from None
    try:
        dataset = reasoning_gym.create_dataset(name, seed=split_seed(name, seed, split), size=size, **params)
    except (TypeError, AssertionError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: reasoning-gym could not build {name!r} with {params}: {err}") from None
    source = f"{PREFIX}{name}"
    problems, seen = [], set()
    for entry in dataset:
        if limit is not None and len(problems) >= limit:
            break
        key = _key(entry["question"])
        if key in seen:
            continue
        seen.add(key)
        problems.append({"prompt": str(entry["question"]).strip(), "answer": str(entry["answer"]).strip(),
                         "source": source})
    return problems


def drop_overlap(train: list[dict], heldout: list[dict]) -> list[dict]:
    """``train`` without the problems whose prompt (whitespace- and case-normalized) is held out."""
    held = {_key(p["prompt"]) for p in heldout}
    return [p for p in train if _key(p["prompt"]) not in held]

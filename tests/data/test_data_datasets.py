import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvr.data import load_problem_set, load_problems
from rlvr.data.datasets import last_boxed

# shared/ sits beside the checkout (the project ships no copy); RLVR_SHARED_DATA overrides
SHARED = Path(os.environ.get("RLVR_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
GSM8K = SHARED / "gsm8k_test.jsonl"
MATH500 = SHARED / "math500_test.jsonl"

needs_gsm8k = pytest.mark.skipif(not GSM8K.exists(), reason=f"{GSM8K} not present")
needs_math500 = pytest.mark.skipif(not MATH500.exists(), reason=f"{MATH500} not present")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_gsm8k
def test_real_gsm8k():
    result = load_problem_set(GSM8K)
    assert result.format == "gsm8k"
    assert len(result.problems) == 1319 and result.n_skipped == 0
    assert result.problems[0]["answer"] == "18"
    assert result.problems[0]["prompt"].startswith("Janet")
    raw = read_jsonl(GSM8K)
    assert [p["prompt"] for p in result.problems] == [r["question"].strip() for r in raw]
    for problem in result.problems:
        assert set(problem) == {"prompt", "answer"}
        assert re.fullmatch(r"-?\d+(\.\d+)?", problem["answer"]), problem["answer"]


@needs_gsm8k
def test_real_gsm8k_explicit_format_and_limit():
    problems = load_problems(GSM8K, format="gsm8k", prompt_key="question", answer_key="answer", limit=25)
    assert len(problems) == 25
    assert problems == load_problems(GSM8K)[:25]


@needs_math500
def test_real_math500():
    result = load_problem_set(MATH500)
    assert result.format == "math"
    assert len(result.problems) == 500
    raw = read_jsonl(MATH500)
    assert [p["answer"] for p in result.problems] == [r["answer"].strip() for r in raw]
    assert [p["prompt"] for p in result.problems] == [r["problem"].strip() for r in raw]


@needs_math500
def test_real_math500_boxed_solution_matches_answer_field():
    from_solution = load_problems(MATH500, format="math", answer_key="solution")
    assert [p["answer"] for p in from_solution] == [p["answer"] for p in load_problems(MATH500)]


def test_parquet_with_field_mapping(tmp_path):
    path = tmp_path / "set.parquet"
    table = pa.table({"q": ["What is 2+2?", "What is 3+4?"], "a": [" 4 ", "7"], "extra": [1, 2]})
    pq.write_table(table, path)
    result = load_problem_set(path, prompt_key="q", answer_key="a")
    assert result.format == "plain"
    assert result.problems == [  # the answer parsed; every other column kept as is (TRL passes them by name)
        {"prompt": "What is 2+2?", "answer": "4", "a": " 4 ", "extra": 1},
        {"prompt": "What is 3+4?", "answer": "7", "a": "7", "extra": 2},
    ]


def test_parquet_gsm8k_style_is_detected(tmp_path):
    path = tmp_path / "gsm.parquet"
    pq.write_table(pa.table({"question": ["q1", "q2"], "answer": ["a\n#### 1,234", "b\n#### -5"]}), path)
    result = load_problem_set(path)
    assert result.format == "gsm8k"
    assert [p["answer"] for p in result.problems] == ["1234", "-5"]


def test_json_array_file(tmp_path):
    path = tmp_path / "set.json"
    path.write_text(json.dumps([{"prompt": "p1", "answer": "1"}, {"prompt": "p2", "answer": "2"}]))
    assert load_problems(path) == [{"prompt": "p1", "answer": "1"}, {"prompt": "p2", "answer": "2"}]


def test_math_from_solution_only(tmp_path):
    rows = [
        {"problem": "half?", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
        {"problem": "two boxes", "solution": "First \\boxed{1}, then \\boxed{ 2 }."},
        {"problem": "fbox", "solution": "\\fbox{x^{2}}"},
    ]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    result = load_problem_set(path)
    assert result.format == "math"
    assert [p["answer"] for p in result.problems] == ["\\frac{1}{2}", "2", "x^{2}"]


def test_math_prefers_answer_field_and_falls_back_to_solution(tmp_path):
    rows = [
        {"problem": "p1", "solution": "\\boxed{1}", "answer": "one"},
        {"problem": "p2", "solution": "\\boxed{2}", "answer": ""},
    ]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    assert [p["answer"] for p in load_problems(path, format="math")] == ["one", "2"]


def test_math_question_field_is_used_when_problem_is_absent(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "q", "solution": "\\boxed{3}"}])
    assert load_problems(path) == [{"prompt": "q", "answer": "3", "solution": "\\boxed{3}"}]


BAD_ROWS = [
    ({"question": "ok", "answer": "x\n#### 1"}, None),
    ({"question": "no answer"}, "answer: missing"),
    ({"question": "int answer", "answer": 5}, "answer: expected a string, got int"),
    ({"question": "   ", "answer": "#### 2"}, "question: empty"),
    ({"question": "no marker", "answer": "just text"}, "answer: no '####'"),
    ({"question": "empty marker", "answer": "text ####  "}, "answer: empty final answer"),
    ({"question": "ok2", "answer": "#### 3"}, None),
]


def test_bad_rows_raise_with_file_row_field(tmp_path):
    rows = [row for row, _ in BAD_ROWS]
    for index, (_, problem) in enumerate(BAD_ROWS):
        if problem is None:
            continue
        # The bad row is the last one, so the error can only come from it.
        path = write_jsonl(tmp_path / f"bad{index}.jsonl", [rows[0], rows[index]])
        with pytest.raises(ValueError) as info:
            load_problems(path, format="gsm8k")
        assert f"{path}:2:{problem}" in str(info.value)


def test_bad_rows_skipped_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [row for row, _ in BAD_ROWS])
    result = load_problem_set(path, format="gsm8k", on_bad_row="skip")
    assert result.problems == [{"prompt": "ok", "answer": "1"}, {"prompt": "ok2", "answer": "3"}]
    assert result.n_skipped == 5
    expected = [f"{path}:{n}:{problem}" for n, (_, problem) in enumerate(BAD_ROWS, start=1) if problem]
    assert [message[: len(prefix)] for message, prefix in zip(result.skipped, expected)] == expected


def test_first_bad_row_raises_by_default(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [row for row, _ in BAD_ROWS])
    with pytest.raises(ValueError, match=re.escape(f"{path}:2:answer")):
        load_problems(path, format="gsm8k")


def test_unbalanced_box_is_a_bad_row(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "\\boxed{\\frac{1}{2}"}])
    with pytest.raises(ValueError, match=re.escape(f"{path}:1:solution: no \\boxed")):
        load_problems(path)
    assert load_problem_set(path, on_bad_row="skip").n_skipped == 1


def test_limit_counts_kept_rows(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [row for row, _ in BAD_ROWS])
    result = load_problem_set(path, format="gsm8k", on_bad_row="skip", limit=2)
    assert [p["prompt"] for p in result.problems] == ["ok", "ok2"]
    assert load_problems(path, format="gsm8k", on_bad_row="skip", limit=0) == []


def test_field_absent_from_file_is_a_config_error(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"text": "q", "answer": "1"}])
    for on_bad_row in ("error", "skip"):
        with pytest.raises(ValueError, match="no field 'question'.*prompt_key"):
            load_problems(path, on_bad_row=on_bad_row)
    assert load_problems(path, prompt_key="text") == [{"prompt": "q", "answer": "1"}]
    with pytest.raises(ValueError, match="no field 'label'.*answer_key"):
        load_problems(path, prompt_key="text", answer_key="label")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_problems(missing)
    with pytest.raises(FileNotFoundError):
        load_problems("./not/here")


def test_unsupported_suffix_and_directory(tmp_path):
    csv = tmp_path / "set.csv"
    csv.write_text("question,answer\nq,1\n")
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        load_problems(csv)
    with pytest.raises(ValueError, match="directory"):
        load_problems(tmp_path)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n{not json\n')
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_problems(path)


@pytest.mark.parametrize("kwargs", [{"format": "csv"}, {"on_bad_row": "ignore"}, {"limit": -1}])
def test_bad_options(tmp_path, kwargs):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "1"}])
    with pytest.raises(ValueError):
        load_problems(path, **kwargs)


def test_hub_name_goes_to_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, subset=None, split=None, **kwargs):
        calls.append((name, subset, split))
        return datasets.Dataset.from_list([{"question": "q", "answer": "r\n#### 7"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    result = load_problem_set("openai/gsm8k", subset="main", split="test")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert result.problems == [{"prompt": "q", "answer": "7"}]
    assert result.source == "openai/gsm8k[test]"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{5}", "5"),
        ("a \\boxed{1} b \\boxed{\\frac{a}{b}} c", "\\frac{a}{b}"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("so \\boxed 7$.", "7"),
        ("no box", None),
        ("\\boxed{open", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_extra_columns_are_kept_by_name(tmp_path):
    """TRL hands a reward function every data set column by name: the loaders keep them on each problem."""
    rows = [{"prompt": "Q 2+3=? A ", "answer": "5", "difficulty": 1, "tags": ["add"], "meta": {"src": "gen"}},
            {"prompt": "Q 9-4=? A ", "answer": " 5", "difficulty": 2, "tags": [], "meta": {"src": "gen"}}]
    for path in (write_jsonl(tmp_path / "t.jsonl", rows), tmp_path / "t.parquet"):
        if path.suffix == ".parquet":
            pq.write_table(pa.Table.from_pylist(rows), path)
        problems = load_problems(path)
        assert problems == [{**rows[0]}, {**rows[1], "answer": "5"}], path.suffix
        assert problems[0]["prompt"] == "Q 2+3=? A "  # verbatim: the trailing space survives (template=raw)


def test_question_column_becomes_the_prompt_and_is_not_repeated(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": " q ", "answer": "x\n#### 7", "level": "easy"}])
    assert load_problems(path) == [{"prompt": " q ", "answer": "7", "level": "easy"}]

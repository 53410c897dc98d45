"""`rlvr verify`: called as verify_main([...]) and as `python -m rlvr.verifier.cli verify` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlvr.verifier.cli import main, verify_main

from .helpers import ROOT

LINES = [
    json.dumps({"id": 1, "response": "so \\boxed{42}", "gold": "Natalia sold 48 clips.\n#### 42"}),
    "this is not json",
    json.dumps({"id": 3, "response": "Answer: 1/2"}),  # no gold
    json.dumps([1, 2]),
    json.dumps({"id": 5, "response": "Answer: 1/2", "gold": "0.5"}),
    "",
    json.dumps({"id": 7, "response": "The answer is 3", "gold": "4"}),
    json.dumps({"id": 8, "response": 5, "gold": "5"}),  # not a string
    json.dumps({"id": 9, "response": "\\boxed{\\Gamma(10000000)}", "gold": "1"}),  # hangs -> timeout
    json.dumps({"id": 10, "response": "\ud800 \\boxed{1}", "gold": "1"}),  # lone surrogate (escaped in JSON)
    json.dumps({"id": 11, "response": "The answer is 3", "gold": "3"}),
]
WANT = ["correct", "error", "error", "error", "correct", "error", "wrong", "error", "timeout", "error", "correct"]


def _write(tmp_path, lines):
    p = tmp_path / "in.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _check(out_path):
    rows = [json.loads(x) for x in out_path.read_text().splitlines()]
    assert [r["reason"] for r in rows] == WANT
    for r in rows:
        assert {"score", "reason", "extracted"} <= set(r)
    assert rows[0]["id"] == 1 and rows[0]["extracted"] == "42" and rows[0]["score"] == 1.0
    assert rows[4]["id"] == 5 and rows[6]["id"] == 7 and rows[10]["id"] == 11  # no shifted lines
    assert "not valid JSON" in rows[1]["detail"] and rows[1]["line"] == 2
    assert "'gold'" in rows[2]["detail"] and rows[2]["id"] == 3
    assert "JSON object" in rows[3]["detail"]
    assert "empty line" in rows[5]["detail"]
    assert "'response'" in rows[7]["detail"]
    return rows


@pytest.mark.parametrize("mode", ["process", "inline"])
def test_verify_main(tmp_path, mode, capsys):
    lines = LINES if mode == "process" else [x for x, w in zip(LINES, WANT) if w != "timeout"]
    inp = _write(tmp_path, lines)
    out = tmp_path / "out.jsonl"
    rc = verify_main(["--input", str(inp), "--output", str(out), "--timeout", "1", "--workers", "2", "--mode", mode])
    assert rc == 0
    if mode == "process":
        _check(out)
    else:
        assert len(out.read_text().splitlines()) == len(lines)
    assert "accuracy" in capsys.readouterr().err


def test_verify_strict_format(tmp_path):
    inp = _write(tmp_path, [json.dumps({"response": "The answer is 3", "gold": "3"}),
                            json.dumps({"response": "\\boxed{3}", "gold": "3"}),
                            json.dumps({"response": "#### 3", "gold": "3"})])
    out = tmp_path / "out.jsonl"
    args = ["--input", str(inp), "--output", str(out), "--strict", "--format", "boxed", "--mode", "inline"]
    assert verify_main(args) == 0
    assert [json.loads(x)["reason"] for x in out.read_text().splitlines()] == ["no_answer", "correct", "no_answer"]


def test_verify_missing_input(tmp_path):
    assert verify_main(["--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert main([]) == 2 and main(["bogus"]) == 2


def test_verify_as_a_subprocess(tmp_path):
    inp = _write(tmp_path, LINES)
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.verifier.cli", "verify", "--input", str(inp), "--output", str(out),
         "--timeout", "1", "--workers", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    _check(out)


def test_invalid_utf8_bytes_in_the_file(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_bytes(b'{"response": "\\\\boxed{1}", "gold": "1"}\n{"response": "\xff\xfe \\\\boxed{1}", "gold": "1"}\n')
    out = tmp_path / "out.jsonl"
    assert verify_main(["--input", str(p), "--output", str(out), "--mode", "inline"]) == 0
    assert [json.loads(x)["reason"] for x in out.read_text().splitlines()] == ["correct", "error"]

"""rlvr's verifier against the public graders' labels (tests/verifier/data), beside Math-Verify alone.

Runs ``scripts/verifier_agreement.py``'s measurement (inline, non-strict, every case scored as a whole
response): rlvr must agree with the labels at least as often as Math-Verify does, and the cases where it
disagrees must be exactly those listed, with a reason, in ``tests/verifier/data/disagreements.md``.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from .helpers import DATA, ROOT

_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(True|False)\s*\|\s*(True|False)\s*\|\s*(True|False)\s*\|\s*(\S.*?)\s*\|$")


def _script():
    spec = importlib.util.spec_from_file_location("verifier_agreement", ROOT / "scripts" / "verifier_agreement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def figures():
    mod = _script()
    cases = mod.load_cases(DATA)
    return cases, mod.measure(cases)


def _listed() -> dict[int, tuple[bool, bool, bool]]:
    rows = {}
    for line in (DATA / "disagreements.md").read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line.strip())
        if m:
            rows[int(m.group(1))] = (m.group(2) == "True", m.group(3) == "True", m.group(4) == "True")
    return rows


def test_agreement_is_at_least_math_verify(figures):
    _, fig = figures
    print("\n" + _script().table(fig))
    assert fig["n"]["all"] >= 400
    assert fig["rlvr"]["all"] >= fig["math_verify"]["all"]
    assert fig["rlvr_upstream"]["all"] >= fig["math_verify_upstream"]["all"]


def test_listed_disagreements_are_exactly_the_current_ones(figures):
    cases, fig = figures
    by_id = {c["id"]: c for c in cases}
    current = {}
    for row in fig["cases"]:
        c = by_id[row["id"]]
        upstream = c.get("upstream_expected", c["expected"])
        if row["rlvr"] != c["expected"] or row["rlvr"] != upstream:
            current[row["id"]] = (row["rlvr"], c["expected"], upstream)
    assert current == _listed()


def test_script_writes_json(tmp_path):
    out = tmp_path / "agreement.json"
    assert _script().main(["--json", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert set(fig) >= {"n", "rlvr", "math_verify", "cases"} and len(fig["cases"]) == fig["n"]["all"]
    assert _script().main(["--data", str(tmp_path / "nowhere")]) == 2

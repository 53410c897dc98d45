"""Equivalence on cases collected from public graders' test suites (tests/verifier/data/equivalence_cases.jsonl).

Each case: ``gold``, ``pred``, ``expected`` (rlvr's intended verdict), ``kind`` (``answer``: compare
the bare answer; ``response``: run the whole pipeline, extraction included), ``source`` (the public
test or rule it comes from). Where rlvr deliberately differs from the upstream label the case has
``upstream_expected`` and ``why``. The accuracy and every disagreement are printed (pytest -s).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rlvr.verifier import make_verifier, normalize_gold, verify_one
from rlvr.verifier.equivalence import answers_equivalent

from .helpers import DATA

CASES = [json.loads(line) for line in (DATA / "equivalence_cases.jsonl").read_text().splitlines() if line.strip()]
# Disagreements we know about and accept (ids), each explained in the report below. A *new* false
# positive (a wrong answer judged correct) fails the test: that is the reward-hacking direction.
KNOWN_FALSE_POSITIVES = {
    253: "math-verify compares comma lists as sets: '4, 10, -2' == '10, 4, -2' (MATH's is_equiv wants order)",
    260: "same: '4, .1, 2' == '0.1, 4, 2' under set semantics",
    398: "math-verify 0.9 ignores a percent sign ('28\\%' == 28), so '4 4/9%' == 40/9",
}
MIN_ACCURACY = 0.95


@pytest.fixture(scope="module")
def roomy_pool():
    """A generous timeout: this compares verdicts, it does not test the limit (2 loaded cores)."""
    with make_verifier("process", workers=2, timeout_s=20.0) as v:
        yield v


def judge(case: dict) -> bool:
    if case["kind"] == "response":
        return verify_one(case["pred"], case["gold"]).reason == "correct"
    return answers_equivalent(normalize_gold(case["gold"]), case["pred"])


def test_case_file_is_well_formed():
    assert len(CASES) >= 300
    ids = [c["id"] for c in CASES]
    assert len(set(ids)) == len(ids)
    for c in CASES:
        assert c["source"] and isinstance(c["gold"], str) and isinstance(c["pred"], str)
        assert c["kind"] in ("answer", "response") and isinstance(c["expected"], bool)
        if "upstream_expected" in c:
            assert c.get("why") or c.get("note")
    sources = Counter(c["source"].split(" ")[0] for c in CASES)
    assert len(sources) >= 6, sources  # several independent graders, not one


def test_equivalence_accuracy():
    verdicts = {c["id"]: judge(c) for c in CASES}
    wrong = [c for c in CASES if verdicts[c["id"]] != c["expected"]]
    acc = 1 - len(wrong) / len(CASES)
    upstream = sum(verdicts[c["id"]] == c.get("upstream_expected", c["expected"]) for c in CASES) / len(CASES)
    print(f"\nequivalence: {len(CASES) - len(wrong)}/{len(CASES)} = {acc:.1%} correct "
          f"(threshold {MIN_ACCURACY:.0%}); agreement with the upstream labels {upstream:.1%}")
    for c in wrong:
        print(f"  MISS id={c['id']} expected={c['expected']} got={verdicts[c['id']]} [{c['source']}]\n"
              f"      gold={c['gold'][:80]!r}\n      pred={c['pred'][-100:]!r}")
    deliberate = [c for c in CASES if "upstream_expected" in c and c["upstream_expected"] != c["expected"]]
    print(f"  {len(deliberate)} cases where rlvr deliberately differs from the upstream label:")
    for c in deliberate:
        print(f"    id={c['id']}: {c.get('why') or c.get('note')}")
    false_pos = {c["id"] for c in wrong if verdicts[c["id"]] and not c["expected"]}
    assert false_pos <= set(KNOWN_FALSE_POSITIVES), f"new false positives: {false_pos - set(KNOWN_FALSE_POSITIVES)}"
    assert acc >= MIN_ACCURACY, f"accuracy {acc:.3f} < {MIN_ACCURACY}"


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "response"][:40], ids=lambda c: f"id{c['id']}")
def test_pipeline_matches_in_a_worker_pool(case, roomy_pool):
    """The isolated pool gives the same verdicts as in-process checking."""
    r = roomy_pool.verify([case["pred"]], [case["gold"]])[0]
    assert r.to_dict() == verify_one(case["pred"], case["gold"]).to_dict()

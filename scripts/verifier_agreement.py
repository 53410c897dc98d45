#!/usr/bin/env python
"""How often rlvr's verifier and Math-Verify alone agree with the expected verdicts of public graders' tests.

    python scripts/verifier_agreement.py [--json PATH] [--data DIR]

Cases are every line of ``tests/verifier/data/*.jsonl`` with ``gold``, ``pred``, ``expected``, ``source``
(``kind`` is ignored here: every ``pred`` is scored as a whole response, as ``rlvr verify`` would see it).

- rlvr: the ``inline`` verifier, non-strict, default ``answer_format``; agreement = (reason is
  ``correct``) == expected.
- Math-Verify: ``math_verify.verify(parse(gold), parse(pred))`` with its default settings, as its
  README shows.

Two label sets are scored: ``expected`` (rlvr's intended verdict) and the upstream grader's own label
(``upstream_expected`` where rlvr deliberately differs, explained in the case's ``why``). Prints a
markdown table per source family and overall; ``--json`` also writes the figures and each case's
verdicts (the disagreements test reads them from here).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "verifier" / "data"


def load_cases(data_dir: Path = DATA) -> list[dict]:
    """All cases of every ``*.jsonl`` file in ``data_dir``, each tagged with its file name."""
    cases = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                case["file"] = path.name
                cases.append(case)
    return cases


def family(source: str) -> str:
    """The public project a case comes from (its source up to the first space)."""
    return source.split(" ")[0]


def rlvr_verdicts(cases: list[dict]) -> list[bool]:
    from rlvr.verifier import make_verifier

    with make_verifier("inline", strict=False) as v:
        results = v.verify([c["pred"] for c in cases], [c["gold"] for c in cases])
    return [r.reason == "correct" for r in results]


def math_verify_verdicts(cases: list[dict]) -> list[bool]:
    """Math-Verify on its own, default settings (its timeouts use signal.alarm: main thread only)."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    out = []
    for c in cases:
        try:
            out.append(bool(verify(parse(c["gold"]), parse(c["pred"]))))
        except Exception:  # noqa: BLE001 -- a crash is a "not equal" verdict, as in a grader loop
            out.append(False)
    return out


def agreement(cases: list[dict], verdicts: list[bool], label: str) -> dict[str, float]:
    """Share of cases whose verdict equals the label, per source family and overall ("all")."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c, v in zip(cases, verdicts):
        want = c.get(label, c["expected"])
        for key in (family(c["source"]), "all"):
            hits[key][0] += int(v == want)
            hits[key][1] += 1
    return {k: h / n for k, (h, n) in hits.items()}


def measure(cases: list[dict]) -> dict:
    ours = rlvr_verdicts(cases)
    theirs = math_verify_verdicts(cases)
    counts: dict[str, int] = defaultdict(int)
    for c in cases:
        counts[family(c["source"])] += 1
        counts["all"] += 1
    return {
        "n": dict(counts),
        "rlvr": agreement(cases, ours, "expected"),
        "math_verify": agreement(cases, theirs, "expected"),
        "rlvr_upstream": agreement(cases, ours, "upstream_expected"),
        "math_verify_upstream": agreement(cases, theirs, "upstream_expected"),
        "cases": [
            {"file": c["file"], "id": c["id"], "expected": c["expected"], "rlvr": o, "math_verify": t}
            for c, o, t in zip(cases, ours, theirs)
        ],
    }


def table(fig: dict) -> str:
    rows = ["| source | cases | rlvr | Math-Verify | rlvr (upstream labels) | Math-Verify (upstream labels) |",
            "|---|---|---|---|---|---|"]
    keys = sorted((k for k in fig["n"] if k != "all"), key=lambda k: -fig["n"][k]) + ["all"]
    for k in keys:
        name = "**all**" if k == "all" else k
        rows.append(f"| {name} | {fig['n'][k]} | {fig['rlvr'][k]:.3f} | {fig['math_verify'][k]:.3f} | "
                    f"{fig['rlvr_upstream'][k]:.3f} | {fig['math_verify_upstream'][k]:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None, help="also write the figures and per-case verdicts here")
    ap.add_argument("--data", default=str(DATA), help="folder of *.jsonl case files")
    args = ap.parse_args(argv)
    data_dir = Path(args.data)
    if not data_dir.is_dir():
        print(f"verifier_agreement: no such folder: {data_dir} (pass --data DIR with *.jsonl case files)",
              file=sys.stderr)
        return 2
    cases = load_cases(data_dir)
    if not cases:
        print(f"verifier_agreement: no cases in {data_dir}/*.jsonl", file=sys.stderr)
        return 2
    fig = measure(cases)
    print(table(fig))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())

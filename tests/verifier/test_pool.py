"""The hard-timeout process pool: hostile inputs, the contract (one result per input, in order),
worker death, memory limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rlvr.verifier import VerifyResult, make_verifier, verify_one

from .hostile_cases import HOSTILE_REASONS, hostile_cases

HOSTILE = hostile_cases()
SLACK_S = 3.0  # dispatcher wake-up + (rarely) waiting for a replacement worker to warm up on 2 busy cores
GOOD = (r"so $\boxed{\frac{1}{2}}$", "0.5")
HANG = (r"\boxed{\Gamma(10000000)}", "5")  # sympy computes a ~65-million-digit number


def test_there_are_at_least_50_hostile_inputs():
    assert len(HOSTILE) >= 50
    assert len({name for name, _, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("name,response,gold", HOSTILE, ids=[n for n, _, _ in HOSTILE])
def test_hostile_input_is_contained(pool, name, response, gold):
    t0 = time.monotonic()
    [r] = pool.verify([response], [gold])
    elapsed = time.monotonic() - t0
    assert isinstance(r, VerifyResult)
    assert r.reason in HOSTILE_REASONS, f"{name}: {r}"
    assert r.score == 0.0
    assert elapsed <= pool.timeout_s + SLACK_S, f"{name} took {elapsed:.2f}s"
    # ... and the pool keeps serving the next request
    t0 = time.monotonic()
    [ok] = pool.verify([GOOD[0]], [GOOD[1]])
    assert ok.reason == "correct", ok
    assert time.monotonic() - t0 <= SLACK_S


def test_one_result_per_input_in_order_with_hangs_mixed_in():
    base = [
        (r"\boxed{42}", "42"), (r"Answer: 7", "#### 8"), ("no answer here", "1"), (r"\boxed{(1,2)}", "(1, 2)"),
        (r"\boxed{x^2-1}", "(x-1)(x+1)"), ("#### 1,000", "1000"), (r"\boxed{\frac{3}{4}}", "0.75"), ("x" * 30000, "1"),
    ]
    batch = []
    for _ in range(3):
        batch += base
        batch.append(HANG)
    responses, golds = [b[0] for b in batch], [b[1] for b in batch]
    # a roomier limit than the shared pool: the non-hanging items must finish even on 2 loaded cores
    with make_verifier("process", workers=2, timeout_s=5.0) as v:
        t0 = time.monotonic()
        results = v.verify(responses, golds)
        elapsed = time.monotonic() - t0
        killed = v.stats()["workers_killed_timeout"]
    assert len(results) == len(batch)
    for (resp, gold), r in zip(batch, results):
        if (resp, gold) == HANG:
            assert r.reason == "timeout"
        else:  # same verdict as an in-process check: nothing shifted
            assert r.to_dict() == verify_one(resp, gold).to_dict()
    assert elapsed < 3 * 5.0 + 25  # 3 hangs of 5 s on 2 workers, plus restarts
    assert killed == 3


def test_empty_batch_and_length_mismatch(pool):
    assert pool.verify([], []) == []
    with pytest.raises(ValueError):
        pool.verify(["a"], [])


def test_concurrent_callers_share_the_pool(pool):
    out: dict[int, list[VerifyResult]] = {}

    def call(k: int) -> None:
        out[k] = pool.verify([rf"\boxed{{{k}}}", rf"\boxed{{{k + 1}}}"], [str(k), str(k)])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(out) == list(range(8))
    for res in out.values():
        assert [r.reason for r in res] == ["correct", "wrong"]


def test_killing_a_worker_mid_batch_still_gives_one_result_per_input():
    with make_verifier("process", workers=2, timeout_s=5.0) as v:
        deadline = time.monotonic() + 60
        while v.stats()["ready"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        batch = [HANG, HANG] + [GOOD] * 10
        holder: dict[str, list[VerifyResult]] = {}
        responses, golds = [b[0] for b in batch], [b[1] for b in batch]
        th = threading.Thread(target=lambda: holder.setdefault("r", v.verify(responses, golds)))
        th.start()
        deadline = time.monotonic() + 30
        while v.stats()["busy"] < 2:  # both workers are now stuck on the hangs
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for pid in v.stats()["busy_pids"]:
            os.kill(pid, signal.SIGKILL)
        th.join(120)
        results = holder["r"]
        st = v.stats()
        info = f"results={[r.to_dict() for r in results]} stats={st}"
        assert len(results) == len(batch), info
        assert [r.reason for r in results[2:]] == ["correct"] * 10, info
        assert all(r.reason in ("timeout", "error") for r in results[:2]), info
        assert st["workers_crashed"] >= 2 and st["retried"] >= 1, info


def test_memory_limit_is_applied_in_the_worker():
    code = (
        "from rlvr.verifier._worker import set_memory_limit\n"
        "set_memory_limit(256)\n"
        "try:\n    b = bytearray(600 * 2**20); print('allocated')\n"
        "except MemoryError:\n    print('MemoryError')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == "MemoryError", out


def test_a_pool_whose_workers_cannot_start_answers_errors():
    # 40 MB of address space is not enough to import sympy: every worker fails at start-up.
    with make_verifier("process", workers=1, timeout_s=1.0, memory_mb=40) as v:
        t0 = time.monotonic()
        res = v.verify([GOOD[0], "x"], [GOOD[1], "y"])
        assert [r.reason for r in res] == ["error", "error"]
        assert time.monotonic() - t0 < 60
        assert v.stats()["broken"]


def test_close_is_idempotent_and_rejects_later_calls():
    v = make_verifier("process", workers=1, timeout_s=1.0)
    assert v.verify([GOOD[0]], [GOOD[1]])[0].reason == "correct"
    pids = v.worker_pids()
    v.close()
    v.close()
    for pid in pids:  # workers are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert v.verify(["a"], ["b"])[0].reason == "error"


def test_inline_mode_same_verdicts():
    with make_verifier("inline") as v:
        res = v.verify([GOOD[0], "I could not solve it.", None], [GOOD[1], "1", "1"])
    assert [r.reason for r in res] == ["correct", "no_answer", "error"]


@pytest.mark.parametrize("bad", [{"mode": "nope"}, {"answer_format": "nope"}, {"mode": "http"}])
def test_make_verifier_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        make_verifier(**bad)

"""The HTTP service: a real `serve-verifier` process on a loopback port, driven by the real client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from rlvr.verifier import make_verifier
from rlvr.verifier.cli import serve_main

from .helpers import ROOT, free_port

TOKEN = "test-token-0123456789"
MAX_BYTES = 200_000
GOOD = (r"so $\boxed{\frac{1}{2}}$", "0.5")
HANG = (r"\boxed{\Gamma(10000000)}", "5")


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RLVR_VERIFIER_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr.verifier.cli", "serve-verifier", "--host", "127.0.0.1", "--port", str(port),
         "--token", TOKEN, "--workers", "2", "--timeout", "2", "--max-request-bytes", str(MAX_BYTES),
         "--max-concurrency", "4"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.2)
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _auth():
    return {"Authorization": f"Bearer {TOKEN}"}


def test_health_needs_no_token(server):
    r = httpx.get(server + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_auth_is_required(server, headers):
    body = {"responses": [GOOD[0]], "golds": [GOOD[1]]}
    assert httpx.post(server + "/verify", json=body, headers=headers).status_code == 401
    assert httpx.get(server + "/metrics", headers=headers).status_code == 401


def test_oversize_requests_are_rejected(server):
    big = {"responses": ["x" * (MAX_BYTES + 10)], "golds": ["1"]}
    assert httpx.post(server + "/verify", json=big, headers=_auth()).status_code == 413

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(50):
            yield b"x" * 10_000

    r = httpx.post(server + "/verify", content=chunks(), headers={**_auth(), "Content-Type": "application/json"})
    assert r.status_code == 413


def test_bad_requests_are_400(server):
    for content in (b"not json", b"[1, 2]", b'{"responses": ["a"], "golds": []}', b'{"responses": "a", "golds": "b"}'):
        r = httpx.post(server + "/verify", content=content, headers={**_auth(), "Content-Type": "application/json"})
        assert r.status_code == 400, (content, r.text)


def test_concurrent_batches(server):
    out: dict[int, list] = {}

    def run(k: int) -> None:
        with make_verifier("http", url=server, token=TOKEN) as v:
            resp = [rf"\boxed{{{k * 100 + i}}}" for i in range(20)]
            gold = [str(k * 100 + i + (i % 2)) for i in range(20)]  # odd i: off by one
            out[k] = v.verify(resp, gold)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(out) == list(range(6))
    for k, res in out.items():
        assert [r.reason for r in res] == ["correct", "wrong"] * 10
        assert [r.extracted for r in res] == [str(k * 100 + i) for i in range(20)]


def test_strictness_travels_with_the_request(server):
    items = (["The answer is 3", "\\boxed{3}", "#### 3"], ["3", "3", "3"])
    with make_verifier("http", url=server, token=TOKEN) as loose:
        assert [r.reason for r in loose.verify(*items)] == ["correct"] * 3
    with make_verifier("http", url=server, token=TOKEN, strict=True, answer_format="boxed") as strict:
        assert [r.reason for r in strict.verify(*items)] == ["no_answer", "correct", "no_answer"]
    bad = {"responses": ["a"], "golds": ["b"], "answer_format": "latex"}
    assert httpx.post(server + "/verify", json=bad, headers=_auth()).status_code == 400


def test_client_side_limits_and_types(server):
    with make_verifier("http", url=server, token=TOKEN) as v:
        res = v.verify([GOOD[0], "x" * 30000, "\ud800", None], [GOOD[1], "1", "1", "1"])
    assert [r.reason for r in res] == ["correct", "too_long", "error", "error"]


def _server_stats(server: str) -> dict:
    return httpx.get(server + "/metrics", headers=_auth(), timeout=30).json()


def test_killing_a_server_worker_mid_request(server):
    batch = [HANG] * 4 + [GOOD] * 10
    holder: dict[str, list] = {}

    def call() -> None:
        with make_verifier("http", url=server, token=TOKEN, timeout_s=2) as v:
            holder["r"] = v.verify([b[0] for b in batch], [b[1] for b in batch])

    th = threading.Thread(target=call)
    th.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None:  # kill a worker while it is stuck on a hang
        assert time.monotonic() < deadline, "no worker ever got busy"
        busy = _server_stats(server)["verifier"]["busy_pids"]
        if busy:
            try:
                os.kill(busy[0], signal.SIGKILL)
                killed = busy[0]
            except ProcessLookupError:  # it timed out and was replaced meanwhile
                pass
        else:
            time.sleep(0.05)
    th.join(180)
    m = _server_stats(server)
    res = holder["r"]
    info = f"killed={killed} results={[r.to_dict() for r in res]} metrics={m}"
    assert len(res) == len(batch), info
    assert [r.reason for r in res[4:]] == ["correct"] * 10, info
    assert all(r.reason in ("timeout", "error") for r in res[:4]), info
    assert m["verifier"]["workers_crashed"] >= 1, info
    assert m["requests"] >= 1 and m["request_latency_ms"]["p50"] is not None, info


def test_client_against_a_dead_server_keeps_the_contract():
    with make_verifier("http", url=f"http://127.0.0.1:{free_port()}", token=TOKEN) as v:
        res = v.verify(["a", "b", "c"], ["1", "2", "3"])
    assert [r.reason for r in res] == ["error"] * 3
    assert "verifier service" in res[0].detail


def test_refuses_public_bind_without_token(monkeypatch):
    monkeypatch.delenv("RLVR_VERIFIER_TOKEN", raising=False)
    assert serve_main(["--host", "0.0.0.0", "--port", str(free_port())]) == 2

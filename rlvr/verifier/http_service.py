"""``mode="http"``: the verifier as a service (FastAPI + uvicorn) and its client.

Server (``rlvr serve-verifier``): one hard-timeout process pool shared by all requests.

- ``POST /verify``  body ``{"responses": [...], "golds": [...], "strict"?: bool, "answer_format"?: str}``
  -> ``{"results": [{score, reason, extracted, detail}, ...]}`` (same length and order). ``strict`` and
  ``answer_format`` override the server's defaults for that request (the client always sends its own).
- ``GET /health``   liveness, no auth.
- ``GET /metrics``  request/item counters, latency percentiles, pool stats (auth).

Limits: bound to 127.0.0.1 unless told otherwise (a non-loopback host needs a token); optional
bearer token (constant-time compare); request body cap (413, checked on Content-Length and while
streaming); at most ``max_concurrency`` batches verified at once (others wait up to
``queue_timeout_s``, then 503); at most ``max_items`` items per request (413).

The client (:class:`HttpVerifier`) keeps the one-result-per-input contract even when the server is
unreachable or answers garbage: those items come back as ``reason="error"``.
"""

# no `from __future__ import annotations`: FastAPI must see the real Request type in create_app

import asyncio
import collections
import hmac
import json
import math
import os
import threading
import time
from typing import Any

from .core import precheck
from .result import ANSWER_FORMATS, BaseVerifier, VerifyResult

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.latencies: collections.deque[float] = collections.deque(maxlen=2000)
        self.in_flight = 0
        self.started = time.time()

    def record(self, results: list[VerifyResult], seconds: float) -> None:
        """One answered /verify request: its latency, item count and verdicts."""
        with self.lock:
            self.latencies.append(seconds)
            self.counts["requests"] += 1
            self.counts["items"] += len(results)
            for r in results:
                self.counts[f"reason_{r.reason}"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            lat = sorted(self.latencies)
            counts = dict(self.counts)
            in_flight = self.in_flight

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

        return {"uptime_s": round(time.time() - self.started, 1), "in_flight": in_flight,
                "request_latency_ms": {"p50": pct(0.50), "p99": pct(0.99)}, **counts}


async def _read_body(request, max_request_bytes: int) -> bytearray | None:
    """The request body, or None when it is over ``max_request_bytes`` (declared, or as it streams in:
    a lying Content-Length cannot make the server buffer more)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_request_bytes:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_request_bytes:
            return None
    return body


def _parse_payload(body: bytes) -> tuple[list, list, bool | None, str | None]:
    """(responses, golds, strict, answer_format) of a /verify body; ValueError/KeyError/TypeError
    (a 400) when it is not what the endpoint takes."""
    payload = json.loads(body)
    responses, golds = payload["responses"], payload["golds"]
    if not isinstance(responses, list) or not isinstance(golds, list):
        raise TypeError("responses and golds must be lists")
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} golds")
    strict, answer_format = payload.get("strict"), payload.get("answer_format")
    if strict is not None and not isinstance(strict, bool):
        raise TypeError("strict must be a boolean")
    if answer_format is not None and answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}")
    return responses, golds, strict, answer_format


async def _verify_holding(sem: asyncio.Semaphore, metrics: _Metrics, verifier: BaseVerifier, responses: list,
                          golds: list, strict: bool | None, answer_format: str | None) -> list[VerifyResult]:
    """Verify in a worker thread while holding ``sem`` (already acquired; released here), counted in
    the metrics as in flight, then recorded."""
    from starlette.concurrency import run_in_threadpool

    t0 = time.monotonic()
    with metrics.lock:
        metrics.in_flight += 1
    try:
        if hasattr(verifier, "verify_with"):  # per-request options (the process and ray pools)
            results = await run_in_threadpool(verifier.verify_with, responses, golds, strict, answer_format)
        else:
            results = await run_in_threadpool(verifier.verify, responses, golds)
    finally:
        sem.release()
        with metrics.lock:
            metrics.in_flight -= 1
    metrics.record(results, time.monotonic() - t0)
    return results


def create_app(
    verifier: BaseVerifier,
    token: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_concurrency: int = 4,
    max_items: int = 4096,
    queue_timeout_s: float = 60.0,
):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="rlvr verifier", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = _Metrics()
    sem = asyncio.Semaphore(max_concurrency)
    expected = f"Bearer {token}".encode() if token else None

    def reject(status: int, what: str, detail: str) -> JSONResponse:
        with metrics.lock:
            metrics.counts[f"rejected_{what}"] += 1
        return JSONResponse({"detail": detail}, status_code=status)

    def authorized(request: Request) -> bool:
        if expected is None:
            return True
        got = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(got, expected)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "mode": verifier.mode}

    @app.get("/metrics")
    async def get_metrics(request: Request):
        if not authorized(request):
            return reject(401, "auth", "missing or wrong bearer token")
        stats = await run_in_threadpool(verifier.stats)
        return {**metrics.snapshot(), "verifier": stats}

    @app.post("/verify")
    async def verify(request: Request):
        if not authorized(request):
            return reject(401, "auth", "missing or wrong bearer token")
        body = await _read_body(request, max_request_bytes)
        if body is None:
            return reject(413, "size", f"request body over {max_request_bytes} bytes")
        try:
            responses, golds, strict, answer_format = _parse_payload(body)
        except (ValueError, KeyError, TypeError) as exc:
            return reject(400, "bad_request", f"bad request: {type(exc).__name__}: {exc}"[:300])
        if len(responses) > max_items:
            return reject(413, "size", f"{len(responses)} items > max_items={max_items}")
        try:
            await asyncio.wait_for(sem.acquire(), timeout=queue_timeout_s)
        except asyncio.TimeoutError:
            return reject(503, "busy", "verifier busy, retry later")
        results = await _verify_holding(sem, metrics, verifier, responses, golds, strict, answer_format)
        return {"results": [r.to_dict() for r in results]}

    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    workers: int = 2,
    timeout_s: float = 5.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_concurrency: int = 4,
    memory_mb: int | None = 1024,
    max_chars: int = 20000,
    strict: bool = False,
    answer_format: str = "auto",
    allow_remote_without_token: bool = False,
    log_level: str = "warning",
) -> None:
    """Run the service until interrupted (blocking)."""
    import uvicorn

    from .pool import ProcessVerifier

    if host not in LOOPBACK and not token and not allow_remote_without_token:
        raise ValueError(f"refusing to listen on {host!r} without a token (set --token or RLVR_VERIFIER_TOKEN)")
    verifier = ProcessVerifier(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, max_chars=max_chars,
                               strict=strict, answer_format=answer_format)
    try:
        app = create_app(verifier, token=token, max_request_bytes=max_request_bytes, max_concurrency=max_concurrency)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        verifier.close()


class HttpVerifier(BaseVerifier):
    """Client for ``rlvr serve-verifier``; the same ``verify``/``close`` interface as the pools."""

    mode = "http"

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 5.0,
        max_chars: int = 20000,
        max_items_per_request: int = 1024,
        request_timeout_s: float | None = None,
        retries: int = 1,
        strict: bool | None = None,
        answer_format: str | None = None,
    ) -> None:
        import httpx

        token = token if token is not None else os.environ.get("RLVR_VERIFIER_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.max_chars = int(max_chars)
        self.max_items = int(max_items_per_request)
        self.request_timeout_s = request_timeout_s
        self.retries = int(retries)
        self._opts = {k: v for k, v in (("strict", strict), ("answer_format", answer_format)) if v is not None}
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(30.0))

    def health(self) -> dict[str, Any]:
        r = self._client.get("/health", timeout=10)
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        try:
            r = self._client.get("/metrics", timeout=10)
            r.raise_for_status()
            return {"mode": self.mode, "url": self.url, **r.json()}
        except Exception as exc:  # noqa: BLE001 -- stats must not raise
            return {"mode": self.mode, "url": self.url, "error": f"{type(exc).__name__}: {exc}"}

    def _post(self, responses: list[str], golds: list[str]) -> list[VerifyResult]:
        timeout = self.request_timeout_s or (60.0 + 2 * self.timeout_s * math.ceil(len(responses) / 2))
        last = "no attempt"
        for _ in range(self.retries + 1):
            try:
                body = {"responses": responses, "golds": golds, **self._opts}
                r = self._client.post("/verify", json=body, timeout=timeout)
                if r.status_code != 200:
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                    if r.status_code in (400, 401, 403, 413):
                        break  # retrying will not help
                    continue
                res = r.json()["results"]
                if len(res) != len(responses):
                    last = "server returned a batch of the wrong length"
                    continue
                return [VerifyResult.from_dict(d) for d in res]
            except Exception as exc:  # noqa: BLE001 -- network/JSON trouble becomes reason=error
                last = f"{type(exc).__name__}: {exc}"[:200]
        return [VerifyResult.error(f"verifier service: {last}") for _ in responses]

    def _verify(self, responses: list[str], golds: list[str]) -> list[VerifyResult]:
        out: list[VerifyResult | None] = [None] * len(responses)
        todo = []
        for i, (resp, gold) in enumerate(zip(responses, golds)):
            pre = precheck(resp, gold, self.max_chars)  # never ship megabytes or unencodable text
            if pre is not None:
                out[i] = pre
            else:
                todo.append(i)
        for k in range(0, len(todo), self.max_items):
            idx = todo[k : k + self.max_items]
            for i, r in zip(idx, self._post([responses[i] for i in idx], [golds[i] for i in idx])):
                out[i] = r
        return [r if r is not None else VerifyResult.error("lost result") for r in out]

    def close(self) -> None:
        self._client.close()

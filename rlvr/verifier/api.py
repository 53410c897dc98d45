"""``make_verifier``: one client interface for the four modes (built from keywords or from a
``VerifierConfig``), and the unisolated ``inline`` mode."""

from __future__ import annotations

from typing import Any

from .core import verify_one
from .result import ANSWER_FORMATS, MODES, BaseVerifier, VerifyResult


class InlineVerifier(BaseVerifier):
    """``mode="inline"``: checks run in the calling process, one after the other.

    No timeout, no memory limit: a hostile response can hang the caller. For debugging and for
    trusted inputs only. (math-verify's own signal-based timeouts are off: they break in threads.)
    """

    mode = "inline"

    def __init__(self, max_chars: int = 20000, strict: bool = False, answer_format: str = "auto", **_: Any):
        self._opts = {"strict": strict, "answer_format": answer_format, "max_chars": max_chars}

    def _verify(self, responses: list[str], golds: list[str]) -> list[VerifyResult]:
        out = []
        for resp, gold in zip(responses, golds):
            try:
                out.append(verify_one(resp, gold, **self._opts))
            except Exception as exc:  # noqa: BLE001 -- the contract: one result per input
                out.append(VerifyResult.error(f"{type(exc).__name__}: {exc}"[:300]))
        return out


def make_verifier(
    mode: str = "process",
    workers: int = 2,
    timeout_s: float = 5.0,
    max_chars: int = 20000,
    memory_mb: int | None = 1024,
    strict: bool = False,
    answer_format: str = "auto",
    url: str | None = None,
    token: str | None = None,
    **kwargs: Any,
) -> BaseVerifier:
    """Build a verifier. All modes share ``verify(responses, golds) -> list[VerifyResult]`` and ``close()``.

    - ``inline``: same process, no isolation (debugging).
    - ``process``: a local pool of ``workers`` processes; hard ``timeout_s`` per item (the worker is
      killed and replaced), ``memory_mb`` address-space cap per worker.
    - ``ray``: ``workers`` Ray actors, each owning a one-process pool with the same semantics
      (extra kwargs: ``num_cpus_per_actor``, ``procs_per_actor``).
    - ``http``: a client for ``rlvr serve-verifier`` at ``url`` (bearer ``token``, default
      ``$RLVR_VERIFIER_TOKEN``). ``strict``/``answer_format`` are sent with every request; the server
      owns the pool and its limits (timeout, memory, workers); ``timeout_s`` here only sizes the
      HTTP timeout.
    """
    if mode not in MODES:
        raise ValueError(f"verifier mode must be one of {MODES}, got {mode!r}")
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    common = {"max_chars": max_chars, "strict": strict, "answer_format": answer_format}
    if mode == "inline":
        return InlineVerifier(**common)
    if mode == "process":
        from .pool import ProcessVerifier

        return ProcessVerifier(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, **common, **kwargs)
    if mode == "ray":
        from .ray_pool import RayVerifier

        return RayVerifier(actors=workers, timeout_s=timeout_s, memory_mb=memory_mb, **common, **kwargs)
    from .http_service import HttpVerifier

    if not url:
        raise ValueError("mode='http' needs url= (where `rlvr serve-verifier` listens)")
    return HttpVerifier(url=url, token=token, timeout_s=timeout_s, max_chars=max_chars, strict=strict,
                        answer_format=answer_format, **kwargs)


def make_verifier_from_config(cfg) -> BaseVerifier:
    """``make_verifier`` with the settings of a ``VerifierConfig`` (the ``verifier`` block of `rlvr train`,
    `rlvr eval` and `rlvr rollout`), read by attribute. Its reward settings (``format_weight``,
    ``custom_reward``) are not the verifier's: they go to ``shaped_rewards``."""
    return make_verifier(mode=cfg.mode, workers=cfg.workers, timeout_s=cfg.timeout_s, max_chars=cfg.max_chars,
                         memory_mb=cfg.memory_mb, strict=cfg.strict, answer_format=cfg.answer_format, url=cfg.url,
                         token=cfg.token)

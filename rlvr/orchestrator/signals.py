"""Stopping a run cleanly: a signal becomes a flag the loop reads between steps."""

from __future__ import annotations

import contextlib
import signal

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@contextlib.contextmanager
def children_leave_stopping_to_the_driver():
    """Processes started inside (Ray's daemons, whose actors inherit from them; the verifier's pool) begin
    with SIGTERM and SIGINT blocked: `scancel`, SLURM preemption and Ctrl-C signal every process of a job at
    once, and the driver alone decides how to stop (finish the step, checkpoint, shut the workers down).
    A blocked signal mask is inherited through fork and exec; the driver's own mask is restored after."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class StopSignals:
    """Turns SIGTERM/SIGINT into a flag the loop checks between steps (a second signal kills)."""

    def __enter__(self):
        self.received = None
        self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

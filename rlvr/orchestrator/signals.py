"""Stopping a run cleanly: a signal becomes a flag the loop reads between steps."""

from __future__ import annotations

import signal


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

"""What runs inside a Ray actor: one `rlvr train` job as a child process.

The module name starts with "_" so Hydra's plugin scan (every Hydra start-up) does not import it; only
the Ray worker does. It imports nothing heavy: the job's own process imports rlvr.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOG_NAME = "job.log"  # the job's stdout and stderr, in its output dir

# Set by Ray for its worker process, wrong for a new driver process (the job joins as its own Ray job).
_WORKER_ONLY_VARS = ("RAY_JOB_ID", "RAY_RAYLET_PID", "RAY_CLIENT_MODE")

# Linux: the child asks for SIGTERM when this worker dies (a killed actor, a dead driver), so a
# job never outlives its actor (the signal follows the thread that started the child: `run` runs in one of
# the actor's pool threads, which live as long as the actor). Then it execs the real command.
_EXEC_WITH_PARENT_DEATH_SIGNAL = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(os.environ.pop('RLVR_LAUNCHER_PARENT_PID')):\n"
    "    sys.exit(143)  # the actor died before prctl\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


class JobRunner:
    """A Ray actor (two threads: `run` blocks in one, `stop` comes in on the other) that runs one
    `python -m rlvr.cli train OVERRIDES` as a child process.

    Stopping is a method call, not a cancelled task: Ray's cancel raises KeyboardInterrupt in the task,
    which was not always delivered (a CI run's job kept training through Ctrl-C)."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.stopping = False
        self.lock = threading.Lock()  # a stop between "not stopping yet" and Popen still finds the process

    def run(self, spec: dict) -> dict:
        """Run the job to completion; return its exit code, summary and log. `spec`: overrides (list),
        job_dir, cwd, env (dict)."""
        job_dir = Path(spec["job_dir"])
        job_dir.mkdir(parents=True, exist_ok=True)
        log_path = job_dir / LOG_NAME
        env = {k: v for k, v in os.environ.items() if k not in _WORKER_ONLY_VARS}
        env.update({str(k): str(v) for k, v in spec.get("env", {}).items()})
        env["PYTHONUNBUFFERED"] = "1"
        train = ["-m", "rlvr.cli", "train", *spec["overrides"]]
        if sys.platform.startswith("linux"):
            env["RLVR_LAUNCHER_PARENT_PID"] = str(os.getpid())
            cmd = [sys.executable, "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, *train]
        else:
            cmd = [sys.executable, *train]
        cwd = spec.get("cwd")
        cwd = cwd if cwd and os.path.isdir(cwd) else None
        started = time.time()
        with open(log_path, "ab") as log:
            log.write(f"$ {shlex.join(['python', *train])}\n".encode())
            log.flush()
            with self.lock:
                if self.stopping:  # stopped before it started: nothing to checkpoint
                    return {"rc": 143, "summary": None, "log": str(log_path), "tail": "", "wall_s": 0.0,
                            "host": os.uname().nodename, "started": started}
                self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)
            rc = self.proc.wait()
        summary_path = job_dir / "summary.json"
        summary = None
        if summary_path.exists():
            try:
                summary = json.loads(summary_path.read_text())
            except ValueError:
                summary = None
        return {"rc": rc, "summary": summary, "log": str(log_path), "tail": _tail(log_path),
                "wall_s": time.time() - started, "host": os.uname().nodename, "started": started}

    def stop(self, grace_s: float) -> None:
        """One SIGTERM (rlvr: finish the step, checkpoint, exit 143); SIGKILL after `grace_s`."""
        with self.lock:
            self.stopping = True
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def _tail(path: Path, lines: int = 15, max_bytes: int = 16384) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

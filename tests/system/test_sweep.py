"""`rlvr train --multirun`: a 2x1 sweep of the (tiny, 2-step) default job, one run dir and W&B run each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .helpers import SMALL

pytestmark = pytest.mark.slow


def test_two_run_sweep_writes_two_runs_with_their_configs(tmp_path, cache_dir):
    sweep_dir = tmp_path / "sweep"
    small = [o for o in SMALL if not o.startswith("logger.wandb.mode")]
    cmd = [sys.executable, "-m", "rlvr.cli", "train", "--multirun", f"hydra.sweep.dir={sweep_dir}",
           f"cache_dir={cache_dir}", *small, "trainer.total_steps=1", "logger.wandb.mode=offline",
           "logger.samples_every=1", "optim.lr=1e-4,3e-4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ, WANDB_MODE="offline"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for job, lr in (("0", 1e-4), ("1", 3e-4)):
        run = sweep_dir / job
        config = json.loads((run / "config.json").read_text())
        assert config["optim"]["lr"] == lr
        assert config["logger"]["wandb"]["group"] == "sweep"
        assert (run / "summary.json").exists() and (run / "metrics.jsonl").exists()
        offline = list((run / "wandb").glob("offline-run-*"))
        assert offline, f"no W&B offline run in {run}"
        # the table of sample completions (logger.samples_every=1): prompt, response, reward, verdict
        tables = list(offline[0].glob("files/media/table/rollout/samples_*.table.json"))
        assert tables, sorted(str(p.relative_to(offline[0])) for p in offline[0].rglob("*"))[:40]
        table = json.loads(tables[0].read_text())
        assert table["columns"] == ["prompt", "response", "reward", "reason", "version"] and table["data"]

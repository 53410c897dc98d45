"""`rlvr train --multirun hydra/launcher=rlvr_ray`: a sweep whose jobs run on a Ray cluster.

The slow test starts its own Ray head on loopback (and stops only that one: its process group), runs a
2-job learning-rate sweep of the tiny default job through the launcher, and checks that each job wrote
its own run dir and W&B run, grouped by the sweep, and joined the cluster the launcher used.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hydra_plugins.rlvr_ray_launcher.ray_launcher import _quote, fits

from .helpers import SMALL

RAY = str(Path(sys.executable).with_name("ray"))


def test_jobs_are_packed_by_their_demand():
    capacity = {"CPU": 4.0, "GPU": 8.0}
    job = {"CPU": 2.0, "GPU": 4.0}
    assert fits(job, [], capacity)
    assert fits(job, [job], capacity)
    assert not fits(job, [job, job], capacity)
    assert not fits({"CPU": 1.0, "GPU": 1.0}, [], {"CPU": 4.0})  # no GPU in the cluster
    assert fits({"CPU": 1.0, "GPU": 0.0}, [], {"CPU": 4.0})


@pytest.mark.parametrize("value", ["optim.lr=0.0001", "algorithm=drpo,optim.lr=3e-4", "/a b/c", "it's", "x${y}",
                                   "a\\'b", "a\\"])
def test_values_passed_to_a_job_stay_one_string(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parsed = OverridesParser.create().parse_override(f"logger.wandb.name={_quote(value)}")
    assert OmegaConf.create({"v": parsed.value()}).v == value


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with 4 CPUs, in its own process group; yields (address, env)."""
    tmp = Path(tempfile.mkdtemp(prefix="rl-", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # stay on loopback (NOTES-CPU.md)
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),  # not ~/.ray/auth_token
               RAY_TMPDIR=str(tmp), WANDB_MODE="offline", RAY_USAGE_STATS_ENABLED="0")
    log = open(tmp / "head.log", "w")
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=4",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}", "--block"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while "Ray runtime started" not in (tmp / "head.log").read_text():
            assert head.poll() is None and time.time() < deadline, (tmp / "head.log").read_text()[-3000:]
            time.sleep(1)
        yield f"127.0.0.1:{port}", env
    finally:
        _stop_group(head)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the head's process group (ray start --block, GCS, raylet, workers), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 30)):  # a throwaway cluster: no long grace
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait_s
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.wait()
                return
            time.sleep(1)


@pytest.mark.slow
def test_sweep_runs_each_job_on_the_ray_cluster(tmp_path, cache_dir, ray_head):
    address, env = ray_head
    sweep_dir = tmp_path / "sweep"
    small = [o for o in SMALL if not o.startswith("logger.wandb.mode")]
    cmd = [sys.executable, "-m", "rlvr.cli", "train", "--multirun", "hydra/launcher=rlvr_ray",
           f"hydra.launcher.address={address}", "hydra.launcher.cpus_per_job=0.5",
           "+hydra.launcher.env.RLVR_SWEEP_TEST=1", f"hydra.sweep.dir={sweep_dir}", f"cache_dir={cache_dir}",
           *small, "trainer.total_steps=1", "logger.wandb.mode=offline", "optim.lr=1e-4,2e-4"]
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:] + "".join(
        f"\n--- {p}\n{p.read_text()[-3000:]}" for p in sweep_dir.glob("*/job.log"))
    names = set()
    for job, lr in (("0", 1e-4), ("1", 2e-4)):
        run = sweep_dir / job
        config = json.loads((run / "config.json").read_text())
        assert config["optim"]["lr"] == lr
        assert config["output_dir"] == str(run)
        assert config["cluster"]["address"] == address, "the job's actors joined the launcher's cluster"
        assert config["logger"]["wandb"]["group"] == "sweep"
        names.add(config["logger"]["wandb"]["name"])
        assert (run / "summary.json").exists() and (run / "metrics.jsonl").exists()
        assert list((run / "wandb").glob("offline-run-*")), f"no W&B offline run in {run}"
        assert "-m rlvr.cli train" in (run / "job.log").read_text()  # the job's own stdout/stderr
    assert len(names) == 2 and all("optim.lr=" in n for n in names), names
    # both jobs fit the 4-CPU cluster (0.5 + 3 actors x 0.5 CPU each): the second starts before the first ends
    events = re.findall(r"#(\d) (started|done)", out)
    assert events[:2] == [("0", "started"), ("1", "started")], events
    print(f"sweep of 2 jobs on Ray: {time.time() - started:.0f}s")


@pytest.mark.slow
def test_ctrl_c_stops_each_job_at_a_checkpoint(tmp_path, cache_dir, ray_head):
    """Ctrl-C in the launcher: every running job gets one SIGTERM, finishes its step, checkpoints, exits 143."""
    address, env = ray_head
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "rlvr.cli", "train", "--multirun", "hydra/launcher=rlvr_ray",
           f"hydra.launcher.address={address}", "hydra.launcher.cpus_per_job=0.5", f"hydra.sweep.dir={sweep_dir}",
           f"cache_dir={cache_dir}", *SMALL, "trainer.total_steps=500", "optim.lr=1e-4"]
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    metrics = sweep_dir / "0" / "metrics.jsonl"
    deadline = time.time() + 600
    while not (metrics.exists() and metrics.read_text().strip()):
        assert launcher.poll() is None and time.time() < deadline, launcher.stdout.read()[-4000:]
        time.sleep(2)
    launcher.send_signal(signal.SIGINT)
    out, _ = launcher.communicate(timeout=600)
    assert launcher.returncode != 0, out[-3000:]
    job_log = (sweep_dir / "0" / "job.log").read_text()
    assert "SIGTERM: stopped after step" in job_log, job_log[-3000:]
    done = [p for p in (sweep_dir / "0" / "checkpoints").glob("step_*") if (p / "COMPLETE").exists()]
    assert done, "no complete checkpoint"
    assert "interrupted: stopping 1 running jobs" in out


@pytest.mark.slow
def test_a_failed_job_fails_the_sweep_with_its_error(tmp_path, cache_dir, ray_head):
    address, env = ray_head
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "rlvr.cli", "train", "--multirun", "hydra/launcher=rlvr_ray",
           f"hydra.launcher.address={address}", f"hydra.sweep.dir={sweep_dir}", f"cache_dir={cache_dir}", *SMALL,
           "trainer.zero_stage=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "job #0 failed: config error" in out and "trainer.zero_stage=4: must be one of" in out, out[-3000:]

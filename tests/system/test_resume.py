"""Exact resume: 3 steps, stop, resume=auto for 3 more == 6 steps straight (CPU, fp32: bit for bit)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from .helpers import SMALL, read_metrics, run_train

pytestmark = pytest.mark.slow

# every prompt batch crosses an epoch boundary at step 3 (12 train problems, 8 prompts per step)
EPOCH = ["data.generated.train_size=12", "data.prompts_per_step=8", "rollout.n=2"]
COMPARED = ("rollout/reward_mean", "rollout/accuracy", "rollout/response_len_mean", "train/loss", "train/entropy",
            "train/clip_frac", "mismatch/abs_diff")


def _weights(out):
    summary = json.loads((out / "summary.json").read_text())
    return load_file(f"{summary['hf_checkpoint']}/model.safetensors")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, cache_dir):
    """6 steps without interruption: what every stopped-and-resumed run must reproduce."""
    out = tmp_path_factory.mktemp("straight") / "run"
    run_train(out, cache_dir, "trainer.total_steps=6", *EPOCH)
    return out


def _same_as_straight(straight, resumed):
    a, b = read_metrics(straight), read_metrics(resumed)
    assert [m["step"] for m in b] == [1, 2, 3, 4, 5, 6], "every step exactly once"
    for ma, mb in zip(a, b):
        for key in COMPARED:
            assert ma[key] == mb[key], (ma["step"], key, ma[key], mb[key])
    wa, wb = _weights(straight), _weights(resumed)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst == 0.0, f"final weights differ by {worst}"


def test_resume_matches_straight_run_across_an_epoch_boundary(tmp_path, cache_dir, straight):
    resumed = tmp_path / "resumed"
    run_train(resumed, cache_dir, "trainer.total_steps=3", *EPOCH)
    # a partial checkpoint left behind by a crash must be ignored
    (resumed / "checkpoints" / "step_5").mkdir()
    (resumed / "checkpoints" / "step_5" / "driver_state.json").write_text('{"step": 5')
    # a kill mid-write leaves a torn last line: resume and the summary tolerate it
    with open(resumed / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "rollout/rew')
    proc = run_train(resumed, cache_dir, "trainer.total_steps=6", "resume=auto", *EPOCH)
    assert "resume=auto: resuming from step 3" in proc.stdout and "step_3" in proc.stdout
    _same_as_straight(straight, resumed)
    before_a = json.loads((straight / "summary.json").read_text())["heldout_accuracy_before"]
    before_b = json.loads((resumed / "summary.json").read_text())["heldout_accuracy_before"]
    assert before_a == before_b
    assert not torch.isnan(torch.tensor(before_b))


def test_whole_job_signalled_checkpoints_and_resumes_exactly(tmp_path, cache_dir, straight):
    """`scancel`, SLURM preemption and Ctrl-C signal every process of the job at once (driver, Ray's daemons,
    the actors, the verifier's pool): the last completed step is checkpointed, the run exits 143, and
    resume=auto then runs every step exactly once, with the metrics and weights of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlvr.cli", "train", f"output_dir={out}", f"cache_dir={cache_dir}", *SMALL,
           "trainer.total_steps=6", *EPOCH]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=dict(os.environ, WANDB_MODE="disabled"))
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole process group, as scancel does
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = len(read_metrics(out))
    assert summary["interrupted"] == "SIGTERM" and summary["steps"] == steps and 3 <= steps < 6
    assert (out / "checkpoints" / f"step_{steps}" / "COMPLETE").exists()
    run_train(out, cache_dir, "trainer.total_steps=6", "resume=auto", *EPOCH)
    _same_as_straight(straight, out)

"""Checkpoint bookkeeping (pure logic: the DeepSpeed side is exercised by tests/system/test_resume.py)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlvr.orchestrator.checkpoint import (
    CheckpointError,
    complete_checkpoints,
    load_pending,
    pending_to_json,
    save_checkpoint,
)
from rlvr.orchestrator.setup import _move_previous_run, _read_rewards, _truncate_metrics
from rlvr.rollout.samples import Group, Sample
from rlvr.verifier import VerifyResult


class _Trainers:
    """Stands in for TrainerGroup's two checkpoint calls: each writes a directory."""

    def __init__(self, fail: OSError | None = None):
        self.fail = fail

    def save_checkpoint(self, path, tag, client_state):
        if self.fail:
            raise self.fail
        Path(path).mkdir(parents=True)
        (Path(path) / "state.pt").write_text(tag)

    def export_hf(self, path):
        Path(path).mkdir(parents=True)


def _run(tmp_path):
    return SimpleNamespace(output_dir=tmp_path, sampler=SimpleNamespace(state_dict=lambda: {"position": 0}),
                           tracker=SimpleNamespace(wandb_run_id=None))


def _steps(tmp_path):
    return [int(p.name.split("_")[1]) for p in complete_checkpoints(tmp_path)]


def test_resuming_from_an_older_checkpoint_drops_the_abandoned_timeline_not_the_new_one(tmp_path):
    run, trainers = _run(tmp_path), _Trainers()
    for step in (2, 4, 6):
        save_checkpoint(run, trainers, step, {}, keep=2)
    assert _steps(tmp_path) == [4, 6]
    # resumed from step 4: its next checkpoint (5) is the newest; 6 belongs to the abandoned run
    save_checkpoint(run, trainers, 5, {}, keep=2)
    assert _steps(tmp_path) == [4, 5]


def test_a_failed_write_leaves_no_temporary_directory_and_says_what_to_do(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(CheckpointError, match=r"step 3: cannot write .*No space left on device.*resume=auto"):
        save_checkpoint(run, _Trainers(fail=OSError(errno.ENOSPC, "No space left on device")), 3, {})
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_pending_rollouts_round_trip_through_json_exactly(tmp_path):
    groups = [Group(problem={"prompt": "1+2=", "answer": "3", "extra": [1, 2]}, prompt_ids=[5, 6],
                    samples=[Sample(0, [7, 8], [-0.1234567890123, -1e-30], "3", "stop", 4)],
                    results=[VerifyResult(1.0, "correct", "3", None)], rewards=[1.0])]
    pending = {5: (groups, {"perf/generate_s": 0.25, "rollout/generated_samples": 1})}
    (tmp_path / "pending_rollouts.json").write_text(json.dumps(pending_to_json(pending)))
    assert load_pending(tmp_path) == pending


def test_a_fresh_start_moves_the_previous_run_aside(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "checkpoints").mkdir()
    messages = []
    _move_previous_run(tmp_path, messages.append)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoints").exists()
    assert (tmp_path / "previous_runs" / "1" / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert "moved to" in messages[0]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    _move_previous_run(tmp_path, messages.append)
    assert (tmp_path / "previous_runs" / "2" / "metrics.jsonl").exists()


def test_a_torn_last_metrics_line_is_tolerated(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "rollout/reward_mean": 0.5}\n{"step": 2, "rollout/reward_mean": 0.7}\n{"step": 3, "ro')
    assert _read_rewards(path) == [0.5, 0.7]
    _truncate_metrics(path, 1)
    assert path.read_text() == '{"step": 1, "rollout/reward_mean": 0.5}\n'


def test_a_bad_resume_path_fails_in_one_line_before_any_model_is_built(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", f"output_dir={tmp_path / 'out'}",
                           f"resume={tmp_path / 'nope' / 'step_3'}", f"cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("resume=")
    assert "Traceback" not in proc.stderr and not (tmp_path / "cache" / "models").exists()

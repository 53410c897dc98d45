"""The tracker's files: metrics.jsonl (one object per step) and completions.jsonl (the sample tables)."""

from __future__ import annotations

import json

import torch

from rlvr.config import WandbConfig
from rlvr.tracking import Tracker


def test_jsonl_backend_writes_metrics_and_completion_tables(tmp_path):
    tracker = Tracker(str(tmp_path), config={}, backends=["jsonl"], wandb_cfg=WandbConfig(mode="disabled"),
                      total_steps=2, progress=False)
    tracker.log(1, {"rollout/reward_mean": torch.tensor(0.5), "train/loss": float("nan")})
    tracker.log_table(1, "rollout/samples", ["prompt", "response", "reward"],
                      [["Calculate 1 + 2.", "1 + 2 = 3\nAnswer: 3", torch.tensor(1.2)], ["Calculate 4 - 1.", "5", 0.0]])
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [{"step": 1, "rollout/reward_mean": 0.5, "train/loss": "nan"}]
    rows = [json.loads(line) for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert [r["response"] for r in rows] == ["1 + 2 = 3\nAnswer: 3", "5"]
    assert rows[0] == {"step": 1, "table": "rollout/samples", "prompt": "Calculate 1 + 2.",
                       "response": "1 + 2 = 3\nAnswer: 3", "reward": rows[0]["reward"]}
    assert abs(rows[0]["reward"] - 1.2) < 1e-6


def test_without_the_jsonl_backend_nothing_is_written(tmp_path):
    tracker = Tracker(str(tmp_path), config={}, backends=[], wandb_cfg=WandbConfig(mode="disabled"), total_steps=1,
                      progress=False)
    tracker.log(1, {"rollout/reward_mean": 0.5})
    tracker.log_table(1, "rollout/samples", ["prompt"], [["x"]])
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "completions.jsonl").exists()

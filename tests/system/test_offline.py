"""An offline round trip on the real stack: `rlvr rollout` samples the tiny model into parquet, then
`rlvr train rollout.source=offline algorithm=pg` trains 2 steps on exactly those samples, with the
importance weights pi_theta / mu (mu = the logged log-probs) in metrics.jsonl."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.system.helpers import SMALL, read_metrics, run_train

pytestmark = pytest.mark.slow

N_PROBLEMS, N = 8, 4
# The 10-step warm-started model of SMALL answers nothing, so correctness rewards are all 0 and step 1
# would not move the policy. DAPO's overlong shaping, recomputed from the logged lengths by the training
# run, gives rewards that differ within a group: step 1 updates, and step 2's weights leave 1.
OVERLONG = ["algorithm.overlong.enabled=true", "algorithm.overlong.cache_len=8"]


def _tiny_model(cache_dir: Path, run_dir: Path) -> str:
    """The model SMALL's `rlvr train` starts from (the same cache entry, built once)."""
    from rlvr.config import compose
    from rlvr.data import load_problem_sets
    from rlvr.models import prepare_model

    cfg = compose([*SMALL, f"output_dir={run_dir}", f"cache_dir={cache_dir}"])
    return prepare_model(cfg.model, load_problem_sets(cfg.data, cfg.seed)[2], cache_dir=str(Path(cache_dir).resolve()),
                         seed=cfg.seed)


def _problems(path: Path) -> Path:
    """GSM8K-style lines (the gold answer after ####) on the tiny model's arithmetic."""
    from rlvr.data import generate_problems

    with open(path, "w") as fh:
        for p in generate_problems(N_PROBLEMS, 5, "train", max_operand=10):
            fh.write(json.dumps({"question": p["prompt"], "answer": f"{p['solution']}\n#### {p['answer']}"}) + "\n")
    return path


def _rollout(cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rlvr.cli", "rollout", f"cache_dir={cache_dir}", "max_tokens=24",
           "verifier.workers=1", "threads=1", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, f"rlvr rollout failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def test_rollout_then_offline_training(tmp_path, cache_dir):
    from rlvr.config import compose
    from rlvr.orchestrator.steps import rollout_metrics
    from rlvr.rollout.offline import OfflineSource

    model = _tiny_model(cache_dir, tmp_path / "scratch")
    data = _problems(tmp_path / "problems.jsonl")

    # 1. rlvr rollout: one row per sample, the columns training reads, weight version 0 (a base model)
    _rollout(cache_dir, f"model={model}", f"data.path={data}", f"n={N}", f"output_dir={tmp_path / 'r'}")
    parquet = tmp_path / "r" / "rollouts.parquet"
    table = pq.read_table(parquet)
    info = json.loads((tmp_path / "r" / "rollout.json").read_text())
    assert table.num_rows == N_PROBLEMS * N == info["n_samples"]
    assert {"prompt", "prompt_ids", "response", "response_ids", "logprobs", "reward", "correct", "reason", "gold",
            "version", "sample_index", "prompt_index"} <= set(table.column_names)
    rows = table.to_pylist()
    assert sorted((r["prompt_index"], r["sample_index"]) for r in rows) == [(p, j) for p in range(N_PROBLEMS)
                                                                           for j in range(N)]
    assert all(len(r["logprobs"]) == len(r["response_ids"]) > 0 and r["version"] == 0 for r in rows)
    assert all(lp <= 0 for r in rows for lp in r["logprobs"])
    assert (info["n"], info["temperature"], info["version"]) == (N, 1.0, 0)

    # 2. rlvr train on the file: pg with the truncated importance weight min(pi_theta / mu, 2)
    run = tmp_path / "train"
    overrides = ["algorithm=pg", "rollout.source=offline", f"rollout.offline_path={parquet}", f"model.path={model}",
                 "trainer.total_steps=2", *OVERLONG]
    proc = run_train(run, cache_dir, *overrides)
    assert "offline: 32 samples of 8 prompts" in proc.stdout
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        for key in ("train/is_weight_mean", "train/ratio_mean", "train/ratio_max", "train/ratio_min",
                    "train/clip_frac", "mismatch/rho_max", "mismatch/kl"):
            assert math.isfinite(m[key]), (key, m[key])
        assert m["perf/generate_s"] == 0.0 and m["offline/epoch"] == 0 and m["offline/version_mean"] == 0
    # step 1 runs at the weights that sampled: the trainer's pi_old reproduces the logged mu, so the
    # rows (prompt ids, response ids, log-probs) reached the trainer intact and aligned
    assert metrics[0]["mismatch/logprob_abs_max"] < 1e-4
    assert abs(metrics[0]["train/is_weight_mean"] - 1) < 1e-4
    # step 2 samples are from version 0 but the policy took a step: real importance weights
    assert abs(metrics[1]["train/ratio_mean"] - 1) > 1e-6 or metrics[1]["mismatch/logprob_abs_max"] > 1e-4

    # 3. the trained-on samples are exactly the file's: the same order rebuilt here gives each step's
    # rollout metrics (rewards recomputed with the run's shaping), and the two steps cover the file once
    source = OfflineSource(compose([*SMALL, f"output_dir={tmp_path / 'scratch'}", f"cache_dir={cache_dir}",
                                    *overrides]))
    covered = []
    for step, logged in enumerate(metrics):
        groups, _, _ = source.next_groups(step)
        expected = rollout_metrics(groups)
        for key in ("rollout/samples", "rollout/reward_mean", "rollout/response_len_mean",
                    "rollout/response_len_max", "rollout/truncated_frac", "verify/no_answer_frac"):
            assert logged[key] == pytest.approx(expected[key], abs=1e-6), key
        covered += [(g.problem["offline_prompt_index"], tuple(s.token_ids)) for g in groups for s in g.samples]
    assert sorted(covered) == sorted((r["prompt_index"], tuple(r["response_ids"])) for r in rows)
    print(f"step 1: is_weight_mean={metrics[0]['train/is_weight_mean']:.6f} "
          f"|pi_old-mu|max={metrics[0]['mismatch/logprob_abs_max']:.2e}; step 2: "
          f"ratio mean/min/max={metrics[1]['train/ratio_mean']:.4f}/{metrics[1]['train/ratio_min']:.4f}/"
          f"{metrics[1]['train/ratio_max']:.4f} clip_frac={metrics[1]['train/clip_frac']:.4f}")

    # 4. a run's checkpoint as the model samples as weight version 2
    _rollout(cache_dir, f"model={run / 'checkpoints' / 'step_2'}", f"data.path={data}", "data.limit=2", "n=2",
             f"output_dir={tmp_path / 'r2'}")
    again = pq.read_table(tmp_path / "r2" / "rollouts.parquet").to_pylist()
    assert len(again) == 4 and {r["version"] for r in again} == {2}

"""A task written the TRL way runs unchanged: a jsonl of verbatim prompts with an `answer` column
(`data.template=raw`), and a TRL reward function (`first_int_reward(prompts, completions, answer, **kwargs)`)
as `verifier.custom_reward`. The default job's warm-started model learns it: held-out accuracy (scored by
the verifier against `answer`) rises, and the function's mean is logged as `rollout/reward/first_int_reward`."""

from __future__ import annotations

import json

import pytest

from .helpers import read_metrics, run_train

pytestmark = pytest.mark.slow

REWARD = "examples.trl_arith.rewards:first_int_reward"


def _default_model(cache_dir) -> str:
    """The default job's tiny model, warm-started as `rlvr train` with no arguments does (cached)."""
    from rlvr.config import Config
    from rlvr.data import load_problem_sets
    from rlvr.models import prepare_model

    cfg = Config(output_dir="unused")
    _, _, warmstart = load_problem_sets(cfg.data, cfg.seed)
    return prepare_model(cfg.model, warmstart, cache_dir=str(cache_dir), seed=cfg.seed)


def _write_task(path, split: str, n: int) -> None:
    """Verbatim prompts in the default job's characters (rlvr.data.tasks.CHARSET): the question, a newline
    and the equation to complete ("...have?\\n3+8="), so the first integer of the completion is the answer."""
    from rlvr.data import CHARSET, generate_problems

    rows = []
    # (rollout.max_tokens=4 keeps the completion to the number, "17. ": the verifier that scores held-out
    # accuracy then reads the answer the reward function reads)
    for p in generate_problems(n, 0, split, max_operand=10, ops=["+", "-"]):
        prompt = p["prompt"] + "\n" + p["solution"].split("=")[0] + "="
        assert set(prompt) <= set(CHARSET), prompt
        rows.append({"prompt": prompt, "answer": p["answer"]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_trl_style_task_trains_with_a_trl_reward_function(tmp_path, cache_dir):
    model = _default_model(cache_dir)
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    _write_task(train, "train", 2000)
    _write_task(heldout, "heldout", 100)
    out = tmp_path / "run"
    run_train(out, cache_dir, f"model.path={model}", f"data.train_path={train}", f"data.eval_path={heldout}",
              "data.template=raw", "algorithm.reward=custom", f"verifier.custom_reward={REWARD}",
              "trainer.total_steps=30", "data.prompts_per_step=32", "rollout.n=8", "rollout.max_tokens=4",
              "data.eval_size=100", "rollout.eval_n=4", "trainer.micro_batch_size=32", "logger.samples_every=0",
              timeout=1200)
    metrics = read_metrics(out)
    assert all("rollout/reward/first_int_reward" in m for m in metrics), sorted(metrics[0])
    # one function of weight 1: the logged mean is the training reward
    assert metrics[0]["rollout/reward/first_int_reward"] == pytest.approx(metrics[0]["rollout/reward_mean"])
    summary = json.loads((out / "summary.json").read_text())
    before, after = summary["heldout_accuracy_before"], summary["heldout_accuracy_after"]
    print(f"\nheld-out accuracy {before:.3f} -> {after:.3f}; first_int_reward "
          f"{metrics[0]['rollout/reward/first_int_reward']:.3f} -> {metrics[-1]['rollout/reward/first_int_reward']:.3f}"
          f" in {summary['wall_s']:.0f}s")
    assert after > before + 0.05, (before, after)

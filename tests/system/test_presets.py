"""Every algorithm preset runs 2 steps of the real loop (Ray actors, a vLLM engine, 2 DeepSpeed ZeRO-2
ranks, the process verifier, weight sync), and `algorithm=ppo` trains its critic (a run of its own, since
its trainer group holds a value model).

The workers start once, for a base config that has a reference model (grpo: k3 KL in the loss); each
preset then composes its own config exactly as `rlvr train algorithm=<key>` would and drives
`Loop(cfg, ...).step` on those workers. A preset may change only the `algorithm` group (asserted), so
the shared workers are what `rlvr train algorithm=<key>` would have started, up to the reference model.
One change to each preset: its reward (correctness or plus_minus) gets a small dense term through
`algorithm.reward=custom` (see `_dense`), so that groups are informative on the tiny model and every
objective takes a real gradient step. Steps are numbered on across presets (weight versions increase).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os

import pytest
import torch

try:
    from .helpers import SMALL, run_train
    from .test_aggregation_invariance import shm_leaks
except ImportError:  # tests/system is not a package: pytest puts this folder itself on sys.path
    from helpers import SMALL, run_train
    from test_aggregation_invariance import shm_leaks

from rlvr.config import config_dir
from rlvr.verifier import compute_rewards

pytestmark = pytest.mark.slow

PRESETS = sorted(p.stem for p in (config_dir() / "algorithm").glob("*.yaml") if p.stem != "ppo")
STEPS_PER_PRESET = 2
EXTRA = ["trainer.check_weight_sync=true"]   # vLLM must hold the trainer's weights after every sync


def correctness_dense(completions, verdicts, **kwargs) -> list[float]:
    """The preset's `correctness` reward plus a dense term, for `algorithm.reward=custom` (TRL's convention)."""
    return [c + _dense(r) for c, r in zip(compute_rewards(verdicts, completions, kind="correctness"), completions)]


def plus_minus_dense(completions, verdicts, **kwargs) -> list[float]:
    """The preset's `plus_minus` reward plus a dense term, for `algorithm.reward=custom` (TRL's convention)."""
    return [c + _dense(r) for c, r in zip(compute_rewards(verdicts, completions, kind="plus_minus"), completions)]


def _dense(response: str) -> float:
    """In [0, 0.75]: more digits and more distinct characters score higher. With SMALL's 16 tokens no
    answer fits ("19-2=17. \\boxed{17}" is 19 characters) and the 10-step warm start answers nothing,
    so the presets' own rewards are equal within every group, every advantage 0, and most objectives
    would take zero-gradient steps; this term makes groups informative without changing the stack."""
    n = max(1, len(response))
    return 0.5 * sum(ch.isdigit() for ch in response) / n + 0.25 * len(set(response)) / n


def _compose(out_dir, cache_dir, *overrides):
    from rlvr.config import compose

    return compose([f"output_dir={out_dir}", f"cache_dir={cache_dir}", *SMALL, *EXTRA, *overrides])


@pytest.fixture(scope="module")
def stack(tmp_path_factory, cache_dir):
    """RunSetup + start_workers once, for the module; torn down (Ray, verifier, tracker) at the end."""
    import ray

    from rlvr import algorithms as A
    from rlvr.orchestrator.setup import RunSetup, start_workers

    saved_env = dict(os.environ)   # start_ray sets Ray/DeepSpeed variables in this process
    shm_before = set(os.listdir("/dev/shm"))
    out = tmp_path_factory.mktemp("presets")
    cfg = _compose(out, cache_dir, "algorithm=grpo")
    algo = cfg.algorithm
    has_ref = A.needs_reference(algo.objective, algo.objective_params, algo.advantage,
                                algo.advantage_params)
    assert has_ref, "the base config must start a reference model for the presets that need one"
    run = RunSetup(cfg)
    placement = None
    try:
        trainers, rollouts, placement = start_workers(cfg, run)
        yield {"cfg": cfg, "run": run, "trainers": trainers, "rollouts": rollouts, "out": out,
               "cache_dir": cache_dir, "step": itertools.count()}
    finally:
        if placement is not None:
            placement.remove()
        ray.shutdown()
        run.tracker.close()
        run.verifier.close()
        os.environ.clear()
        os.environ.update(saved_env)
    leaked = shm_leaks(shm_before)
    assert not leaked, f"/dev/shm entries left behind: {leaked}"


def _objective_metric_keys(cfg: dict, with_ref: bool) -> set[str]:
    """The metric names the preset's objective reports, from one call on a dummy micro-batch."""
    from rlvr.algorithms import compute_policy_loss
    from rlvr.orchestrator.algorithm import AlgorithmDriver

    spec = AlgorithmDriver(cfg).spec()
    lp = -torch.rand(2, 3)
    _, metrics = compute_policy_loss(
        spec["objective"], logprobs=lp, old_logprobs=lp - 0.01, rollout_logprobs=lp + 0.01,
        advantages=torch.tensor([1.0, -1.0]), mask=torch.ones(2, 3), ref_logprobs=lp + 0.02 if with_ref else None,
        loss_agg_mode=spec["loss_agg_mode"], horizon=spec["horizon"], num_tokens=6, num_seqs=2,
        **spec["objective_params"])
    return set(metrics)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_two_steps(stack, preset):
    from rlvr.algorithms import OBJECTIVES
    from rlvr.orchestrator.loop import Loop

    base, run, trainers, rollouts = stack["cfg"], stack["run"], stack["trainers"], stack["rollouts"]
    cfg = _compose(stack["out"], stack["cache_dir"], f"algorithm={preset}")   # what `rlvr train` would run
    algo = cfg.algorithm
    assert algo.name == preset
    changed = sorted(f.name for f in dataclasses.fields(cfg)
                     if f.name != "algorithm" and getattr(cfg, f.name) != getattr(base, f.name))
    assert not changed, f"preset {preset} changes {changed}: the shared workers would not match"
    # (the shared trainers have a reference model, so a preset that needs pi_ref gets it)
    # the preset's reward plus a dense term (see _dense): informative groups on the tiny model
    kind = algo.reward
    assert kind in ("correctness", "plus_minus"), f"{preset}: no dense variant of reward {kind!r}"
    cfg = copy.deepcopy(cfg)
    cfg.algorithm.reward = "custom"
    cfg.verifier.custom_reward = f"{__name__}:{kind}_dense"
    algo = cfg.algorithm

    expected = {f"train/{k}" for k in _objective_metric_keys(cfg, with_ref=True)}
    expected |= {"train/loss", "train/entropy", "train/grad_norm", "train/optimizer_steps",
                 "rollout/reward_mean", "rollout/extra_gen_rounds", "mismatch/logprob_abs_max"}
    if algo.dcmdp.enabled:
        expected |= {"train/dcmdp_lambda_prev", "train/dcmdp_update_skipped"}   # the dual-ascent controller
    loop = Loop(cfg, run, trainers, rollouts)
    before = trainers.state_dict()
    learnable = []
    for _ in range(STEPS_PER_PRESET):
        step = next(stack["step"])
        metrics = loop.step(step)
        run.tracker.log(step + 1, metrics)
        missing = sorted(expected - set(metrics))
        assert not missing, f"{preset} step {step}: metrics lack {missing}"
        bad = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not math.isfinite(v)}
        assert not bad, f"{preset} step {step}: non-finite metrics {bad}"
        assert metrics["train/optimizer_steps"] == algo.mini_batches * algo.ppo_epochs
        learnable.append(metrics["train/advantage_abs_mean"] > 0)
        if learnable[-1]:
            assert metrics["train/grad_norm"] > 0, f"{preset} step {step}: zero gradient for non-zero advantages"
        assert metrics["mismatch/weight_sync_max_abs"] < 1e-5, metrics["mismatch/weight_sync_max_abs"]
        assert metrics["mismatch/logprob_abs_max"] < 1e-3, metrics["mismatch/logprob_abs_max"]
        assert rollouts.version == step + 1
        if not algo.dynamic_sampling:
            assert metrics["rollout/extra_gen_rounds"] == 0
    if loop.algo.dcmdp is not None:
        assert loop.algo.dcmdp.num_updates == STEPS_PER_PRESET
    after = trainers.state_dict()
    moved = max((after[k].float() - before[k].float()).abs().max().item() for k in before)
    assert any(learnable), f"{preset}: every advantage was 0 in {STEPS_PER_PRESET} steps"
    assert moved > 0, f"{preset}: weights did not change in {STEPS_PER_PRESET} steps"
    clip = {k: round(v, 4) for k, v in metrics.items() if k in ("train/clip_frac", "train/mask_frac")}
    agg = algo.loss_agg_mode or OBJECTIVES[algo.objective].default_agg
    print(f"\n{preset:13s} objective={algo.objective:12s} agg={agg:24s} "
          f"loss={metrics['train/loss']:+.4f} grad_norm={metrics['train/grad_norm']:.3e} max|dW|={moved:.2e} "
          f"reward={kind} learnable_steps={sum(learnable)} "
          f"extra_rounds={metrics['rollout/extra_gen_rounds']} {clip} step_s={metrics['perf/step_s']:.2f}")


def test_ppo_trains_its_critic_and_resumes(tmp_path, cache_dir):
    """`rlvr train algorithm=ppo`: a value model in the trainer group (its own DeepSpeed engine and
    optimizer) gives GAE its V; it learns from GAE's returns with value clipping, and is checkpointed."""
    from rlvr.config import ConfigError

    with pytest.raises(ConfigError, match=r"algorithm\.critic"):
        _compose(tmp_path / "composed", cache_dir, "algorithm=ppo", "+algorithm.critic.bogus=1")
    with pytest.raises(ConfigError, match=r"algorithm\.critic"):
        _compose(tmp_path / "composed", cache_dir, "algorithm=grpo", "+algorithm.critic.lr=0.001")

    out = tmp_path / "run"
    dense = ["algorithm.reward=custom", f"verifier.custom_reward={__name__}:correctness_dense"]
    run_train(out, cache_dir, "algorithm=ppo", "algorithm.critic.lr=0.001",
              "trainer.total_steps=3", "trainer.save_every=2", *dense)
    from .helpers import read_metrics

    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert m["critic/optimizer_steps"] == m["train/optimizer_steps"] == 2   # ppo: 2 mini-batches
        assert m["critic/grad_norm"] > 0 and math.isfinite(m["critic/value_loss"])
        assert 0 <= m["critic/value_clip_frac"] <= 1
    # the head starts at V = 0 and learns
    assert metrics[-1]["critic/value_mean"] != metrics[0]["critic/value_mean"]
    assert (out / "checkpoints" / "step_2" / "deepspeed" / "critic").is_dir()
    print(f"\nppo: value loss {[round(m['critic/value_loss'], 4) for m in metrics]}, "
          f"explained variance {[round(m['critic/value_explained_var'], 3) for m in metrics]}")

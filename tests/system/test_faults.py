"""Fault injection: a rollout worker killed during a step is replaced, receives the current weights,
and its prompts are generated again: the step completes with every sample, none lost or doubled."""

from __future__ import annotations

import threading
import time

import pytest
import ray

from rlvr.config import compose
from rlvr.orchestrator.loop import Loop
from rlvr.orchestrator.setup import RunSetup, start_workers

from .helpers import SMALL

pytestmark = pytest.mark.slow


def test_killed_rollout_worker_is_replaced_and_the_step_completes(tmp_path, cache_dir):
    overrides = [o for o in SMALL if not o.startswith(("data.prompts_per_step", "rollout.n"))]
    cfg = compose([f"output_dir={tmp_path}", f"cache_dir={cache_dir}", *overrides, "data.prompts_per_step=32",
                   "rollout.n=8", "trainer.check_weight_sync=true"])
    run = RunSetup(cfg)
    trainers, rollouts, placement = start_workers(cfg, run)
    try:
        loop = Loop(cfg, run, trainers, rollouts)
        first = loop.step(0)
        assert first["rollout/worker_restarts"] == 0
        victim = rollouts.workers[0]
        killer = threading.Thread(target=lambda: (time.sleep(0.2), ray.kill(victim, no_restart=True)))
        killer.start()
        second = loop.step(1)
        killer.join()
        assert rollouts.workers[0] is not victim
        assert second["rollout/worker_restarts"] == 1
        assert second["rollout/samples"] == 32 * 8  # every prompt's samples, once
        assert second["train/optimizer_steps"] > 0
        # the replacement holds the trainer's current weights
        assert second["mismatch/weight_sync_max_abs"] < 1e-5
        third = loop.step(2)
        assert third["rollout/samples"] == 32 * 8 and third["mismatch/logprob_abs_max"] < 1e-3
    finally:
        run.tracker.close()
        run.verifier.close()
        placement.remove()
        ray.shutdown()


def test_dead_trainer_rank_stops_with_a_clear_message(tmp_path, cache_dir):
    from rlvr.orchestrator.groups import TrainerRankDied

    cfg = compose([f"output_dir={tmp_path}", f"cache_dir={cache_dir}", *SMALL])
    run = RunSetup(cfg)
    trainers, rollouts, placement = start_workers(cfg, run)
    try:
        loop = Loop(cfg, run, trainers, rollouts)
        loop.step(0)
        ray.kill(trainers.ranks[1], no_restart=True)
        with pytest.raises(TrainerRankDied, match=r"rank\(s\) \[1\] died.*resume=auto"):
            loop.step(1)
    finally:
        run.tracker.close()
        run.verifier.close()
        placement.remove()
        ray.shutdown()

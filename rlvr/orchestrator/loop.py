"""The RL loop. One step: sample prompts -> generate -> verify -> advantages -> train -> sync -> log."""

from __future__ import annotations

import time

from rlvr.config import Config
from rlvr.orchestrator.algorithm import AlgorithmDriver
from rlvr.orchestrator.checkpoint import load_pending, save_checkpoint
from rlvr.orchestrator.rollouts import Collector, make_rollouts
from rlvr.orchestrator.setup import RunSetup, shutdown, start_workers
from rlvr.orchestrator.signals import StopSignals
from rlvr.orchestrator.steps import mismatch_report, rollout_metrics, step_metrics, to_batch
from rlvr.weight_sync import WeightSync


def train(cfg: Config) -> dict:
    run = RunSetup(cfg)  # output dir, plugins, data, tokenizer, model dir, verifier, tracker
    trainers, rollouts, placement = start_workers(cfg, run)
    loop = Loop(cfg, run, trainers, rollouts, WeightSync(cfg.trainer.weight_sync, trainers, rollouts, placement))
    loop.before = loop.restore() if run.resume_from else loop.evaluate()
    run.log(f"held-out accuracy before RL: {_accuracy_line(loop.before)} ({len(run.eval_problems)} problems)")
    after, stopped = {}, None
    with StopSignals() as stop:
        for step in range(run.start_step, cfg.trainer.total_steps):
            run.tracker.log(step + 1, loop.step(step))
            loop.after_step(step + 1)
            if stop.received:  # SIGTERM/SIGINT: finish the step, checkpoint, leave cleanly
                stopped, path = stop.received, loop.checkpoint(step + 1)
                run.log(f"{stopped}: stopped after step {step + 1}; resume with resume=auto ({path})")
                break
    if not stopped:
        after = loop.evaluate()
        run.log(f"held-out accuracy before RL: {_accuracy_line(loop.before)}; after: {_accuracy_line(after)}")
        path = loop.checkpoint(cfg.trainer.total_steps)
    summary = run.finish(before=loop.before, after=after, hf_checkpoint=path, interrupted=stopped)
    loop.close()
    shutdown(cfg, placement)
    return {"interrupted": stopped, "steps": step + 1} if stopped else summary


class Loop:
    def __init__(self, cfg: Config, run: RunSetup, trainers, rollouts, sync: WeightSync | None = None):
        self.cfg, self.run, self.trainers, self.rollouts = cfg, run, trainers, rollouts
        self.sync = sync or WeightSync("object_store", trainers, rollouts, placement=None)
        self.algo = AlgorithmDriver(cfg)
        self.offline = None
        if cfg.rollout.source == "offline":  # samples logged by `rlvr rollout`, not generated here
            from rlvr.rollout.offline import OfflineSource

            self.offline = OfflineSource(cfg, run)
        self.collect = Collector(cfg, run, rollouts, self.offline)
        self.source = make_rollouts(cfg, self.collect, rollouts)  # sync, or async (generation runs ahead)
        self.before: dict = {}  # held-out accuracy before RL
        self.nonfinite_in_row = 0
        self.saved_at = time.monotonic()  # for trainer.save_every_minutes

    def step(self, step: int) -> dict:
        start = time.perf_counter()
        # 1-3. prompts -> n samples each -> verified rewards (async: generated while the last step trained)
        groups, info = self.source.next(step)
        batch, rewards = to_batch(groups, self.run.tokenizer.pad_token_id)
        self.last_groups, self.last_batch = groups, batch  # sample tables; scripts/bench_step.py
        perf = {"perf/sleep_s": self.source.yield_device()}
        # 4. pi_old (and pi_ref) from the trainer, then advantages
        batch, perf["perf/logprob_s"] = self.trainers.logprobs(batch, self.cfg.rollout.temperature)
        batch = self.algo.advantages(batch, rewards, self.trainers)
        # 5. policy-gradient updates: ppo_epochs x mini_batches optimizer steps
        t_train = time.perf_counter()
        train_metrics = self.trainers.update(batch, **self.algo.update_args())
        perf["perf/train_s"] = time.perf_counter() - t_train
        self._guard_nonfinite(train_metrics, step)
        # 6. new weights to every vLLM worker (async: once the batches generated ahead are finished)
        info["perf/wait_s"] += self.source.settle()
        perf["perf/sleep_s"] += self.rollouts.wake_up()
        perf["perf/sync_s"] = self.sync(version=step + 1)
        # 7. metrics
        metrics = {**rollout_metrics(groups), **train_metrics, **info, **mismatch_report(batch)}
        if self.cfg.trainer.check_weight_sync:
            metrics["mismatch/weight_sync_max_abs"] = self.sync.max_abs_error()
        metrics.update(self.algo.after_update(train_metrics))
        return metrics | step_metrics(perf, batch, time.perf_counter() - start, self.rollouts.restarts)

    def evaluate(self) -> dict:
        from rlvr.evaluation import evaluate

        run = self.run
        return evaluate(self.rollouts, run.verifier, run.eval_problems, run.eval_prompt_ids, self.cfg.rollout,
                        seed=self.cfg.seed + 7)

    def after_step(self, done: int) -> None:
        """Sample tables, periodic evaluation and checkpoints, on their schedules."""
        cfg = self.cfg
        if cfg.logger.samples_every and done % cfg.logger.samples_every == 0:
            rows = [[g.problem["prompt"], s.text, r, res.reason, s.version]
                    for g in self.last_groups[:4] for s, r, res in zip(g.samples, g.rewards, g.results)][:16]
            self.run.tracker.log_table(done, "rollout/samples", ["prompt", "response", "reward", "reason", "version"],
                                       rows)
        if cfg.eval.every_steps and done % cfg.eval.every_steps == 0:
            ev = self.evaluate()
            self.run.tracker.log_table(done, "eval/samples", ["prompt", "response", "gold", "reason"], ev["examples"])
        every, minutes = cfg.trainer.save_every, cfg.trainer.save_every_minutes
        due = (every and done % every == 0) or (minutes and time.monotonic() - self.saved_at >= 60 * minutes)
        if due and done < cfg.trainer.total_steps:  # a SIGKILL then loses at most that much
            self.checkpoint(done)

    def checkpoint(self, step: int) -> str:
        self.saved_at = time.monotonic()
        before = {k: v for k, v in self.before.items() if k != "examples"}
        extra = {"dcmdp": self.algo.state_dict(), "heldout_before": before,
                 "offline": self.offline.state_dict() if self.offline else None, "sample_counts": self.source.counts}
        return save_checkpoint(self.run, self.trainers, step, extra, keep=self.cfg.trainer.keep_checkpoints,
                               pending=self.source.pending())

    def restore(self) -> dict:
        """Workers' side of a resume: DeepSpeed state into every rank, its weights into every vLLM worker.
        Returns the held-out accuracy measured before RL."""
        run, state = self.run, self.run.resume_state
        self.trainers.load_checkpoint(str(run.resume_from / "deepspeed"), tag=f"step_{run.start_step}")
        self.sync(version=run.start_step)
        self.algo.load_state_dict(state.get("dcmdp"))
        if self.offline is not None and state.get("offline"):
            self.offline.load_state_dict(state["offline"])
        self.source.restore(load_pending(run.resume_from))
        self.source.counts.update(state.get("sample_counts", {}))
        return state.get("heldout_before", {})

    def close(self) -> None:
        self.source.close()

    def _guard_nonfinite(self, metrics: dict, step: int) -> None:
        """Steps with a non-finite loss or gradient are skipped by the trainer; too many in a row stop the run."""
        self.nonfinite_in_row = self.nonfinite_in_row + 1 if metrics.get("train/nonfinite_skipped_steps") else 0
        limit = self.cfg.trainer.max_nonfinite_steps
        if self.nonfinite_in_row >= limit:
            raise RuntimeError(f"non-finite loss or gradient in {limit} steps in a row (last: step {step + 1}); "
                               "stopping. Resume from the last checkpoint with resume=auto after fixing the cause.")


def _accuracy_line(ev: dict) -> str:
    return f"{ev.get('accuracy', float('nan')):.3f} (greedy {ev.get('greedy_accuracy', float('nan')):.3f})"

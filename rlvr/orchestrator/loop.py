"""The RL loop. One step: sample prompts -> generate -> verify -> advantages -> train -> sync -> log."""

from __future__ import annotations

import json
import signal
import time

import ray
import torch

from rlvr import algorithms as A
from rlvr.orchestrator.ahead import RolloutsAhead
from rlvr.orchestrator.checkpoint import load_pending, save_checkpoint
from rlvr.orchestrator.groups import RolloutGroup, TrainerGroup
from rlvr.orchestrator.placement import Placement, start_ray
from rlvr.orchestrator.setup import RunSetup, algorithm_spec, critic_config, reward_config
from rlvr.orchestrator.steps import (
    evaluate,
    generate_and_score,
    mismatch_report,
    rollout_metrics,
    sampling_params,
    to_batch,
    weight_sync_error,
)
from rlvr.orchestrator.weight_sync import WeightSync


def train(cfg: dict) -> dict:
    run = RunSetup(cfg)  # output dir, plugins, data, tokenizer, model dir, verifier, tracker
    trainers, rollouts, placement = start_workers(cfg, run)
    loop = Loop(cfg, run, trainers, rollouts, WeightSync(cfg["trainer"]["weight_sync"], trainers, rollouts, placement))
    if run.resume_from:
        loop.restore()
    else:
        loop.before = loop.evaluate()
    run.log(f"held-out accuracy before RL: {_accuracy_line(loop.before)} ({len(run.eval_problems)} problems)")
    with StopSignals() as stop:
        for step in range(run.start_step, cfg["trainer"]["total_steps"]):
            metrics = loop.step(step)
            run.tracker.log(step + 1, metrics)
            loop.after_step(step + 1)
            if stop.received:  # SIGTERM/SIGINT: finish the step, checkpoint, leave cleanly
                path = loop.checkpoint(step + 1)
                run.log(f"{stop.received}: stopped after step {step + 1}; resume with resume=auto ({path})")
                run.finish(before=loop.before, after={}, hf_checkpoint=path, interrupted=stop.received)
                loop.close()
                _shutdown(cfg, placement)
                return {"interrupted": stop.received, "steps": step + 1}
    after = loop.evaluate()
    run.log(f"held-out accuracy before RL: {_accuracy_line(loop.before)}; after: {_accuracy_line(after)}")
    hf_dir = loop.checkpoint(cfg["trainer"]["total_steps"])
    summary = run.finish(before=loop.before, after=after, hf_checkpoint=hf_dir)
    loop.close()
    _shutdown(cfg, placement)
    return summary


def _accuracy_line(ev: dict) -> str:
    return f"{ev.get('accuracy', float('nan')):.3f} (greedy {ev.get('greedy_accuracy', float('nan')):.3f})"


def _shutdown(cfg: dict, placement: Placement) -> None:
    placement.remove()
    if not cfg["cluster"].get("address"):
        ray.shutdown()


class StopSignals:
    """Turns SIGTERM/SIGINT into a flag the loop checks between steps (a second signal kills)."""

    def __enter__(self):
        self.received = None
        self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def start_workers(cfg: dict, run: RunSetup) -> tuple[TrainerGroup, RolloutGroup, Placement]:
    """Ray, one placement group, the trainer ranks (with a reference model if a KL term needs one)
    and the vLLM rollout workers."""
    algo, roll = cfg["algorithm"], cfg["rollout"]
    start_ray(cfg["cluster"], run.cache_dir, kv_cache_gb=roll["kv_cache_gb"])
    placement = Placement(cfg["trainer"]["num_ranks"], roll["num_workers"], cpus=cfg["cluster"]["cpus_per_actor"],
                          gpus=cfg["cluster"]["gpus_per_actor"], mode=cfg["cluster"]["placement"])
    needs_ref = A.needs_reference(algo["objective"], algo["objective_params"], algo["advantage"],
                                  algo["advantage_params"])
    trainers = TrainerGroup(placement, run.model_dir, num_ranks=cfg["trainer"]["num_ranks"], seed=cfg["seed"],
                            optim=cfg["optim"], trainer=cfg["trainer"], dtype=cfg["model"]["dtype"],
                            with_reference=needs_ref, plugins=algo["plugins"],
                            gradient_checkpointing=cfg["model"]["gradient_checkpointing"],
                            critic=critic_config(cfg))
    rollouts = RolloutGroup(placement, run.model_dir, num_workers=roll["num_workers"], seed=cfg["seed"],
                            dtype=cfg["model"]["dtype"], rollout=roll, plugins=algo["plugins"],
                            threads=roll["cpu_threads"])
    (run.output_dir / "placement.json").write_text(
        json.dumps({**placement.describe(), "rollout_workers": rollouts.info}, indent=2))
    run.log(f"ready in {time.perf_counter() - run.started:.1f}s: {len(trainers.ranks)} trainer ranks "
            f"(ZeRO-{cfg['trainer']['zero_stage']}), {len(rollouts.workers)} vLLM workers, reference={needs_ref}")
    return trainers, rollouts, placement


class Loop:
    def __init__(self, cfg: dict, run: RunSetup, trainers: TrainerGroup, rollouts: RolloutGroup,
                 sync: WeightSync | None = None):
        self.cfg, self.run, self.trainers, self.rollouts = cfg, run, trainers, rollouts
        self.sync = sync or WeightSync("object_store", trainers, rollouts, placement=None)
        self.algo = cfg["algorithm"]
        self.params = sampling_params(cfg["rollout"])
        self.reward_cfg = reward_config(cfg)
        self.dcmdp = A.DCMDPController.from_config(self.algo["dcmdp"]) if self.algo["dcmdp"].get("enabled") else None
        self.before: dict = {}  # held-out accuracy before RL
        self.nonfinite_in_row = 0
        self.counts = {"generated": 0, "trained": 0, "dropped": 0}
        self.offline = None
        if cfg["rollout"]["source"] == "offline":  # samples logged by `rlvr rollout`, not generated here
            from rlvr.offline import OfflineSource

            self.offline = OfflineSource(cfg, run)
        orch = cfg["orchestrator"]
        self.max_staleness = orch["max_staleness"] if orch["mode"] == "async" else 0
        self.ahead = (RolloutsAhead(self.collect_groups, orch["max_staleness"], cfg["trainer"]["total_steps"])
                      if orch["mode"] == "async" else None)

    def restore(self) -> None:
        """Workers' side of a resume: DeepSpeed state into every rank, its weights into every vLLM worker."""
        run, state = self.run, self.run.resume_state
        self.trainers.load_checkpoint(str(run.resume_from / "deepspeed"), tag=f"step_{run.start_step}")
        self.sync(version=run.start_step)
        if self.dcmdp is not None and state.get("dcmdp"):
            self.dcmdp.load_state_dict(state["dcmdp"])
        if self.offline is not None and state.get("offline"):
            self.offline.load_state_dict(state["offline"])
        if self.ahead is not None:
            self.ahead.restore(load_pending(run.resume_from))
        self.counts.update(state.get("sample_counts", {}))
        self.before = state.get("heldout_before", {})

    def checkpoint(self, step: int) -> str:
        before = {k: v for k, v in self.before.items() if k != "examples"}
        extra = {"dcmdp": self.dcmdp.state_dict() if self.dcmdp else None, "heldout_before": before,
                 "offline": self.offline.state_dict() if self.offline else None, "sample_counts": self.counts}
        pending = self.ahead.pending() if self.ahead is not None else {}
        return save_checkpoint(self.run, self.trainers, step, extra, keep=self.cfg["trainer"]["keep_checkpoints"],
                               pending=pending)

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()

    def step(self, step: int) -> dict:
        algo, temperature = self.algo, self.cfg["rollout"]["temperature"]
        t0 = time.perf_counter()
        # 1-3. prompts -> n samples each -> verified rewards (DAPO: keep only informative groups)
        groups, info = self.next_groups(step)
        self.last_groups = groups
        sleep_s = self.rollouts.sleep() if self.ahead is None else 0.0  # colocated GPUs: the trainer's turn
        batch, rewards = to_batch(groups, self.run.tokenizer.pad_token_id)
        self.last_batch = batch  # for scripts/bench_step.py, which replays it through DeepSpeed alone
        # 4. pi_old (and pi_ref) from the trainer, then advantages
        batch, logprob_s = self.trainers.logprobs(batch, temperature)
        adv_params = dict(algo["advantage_params"])
        if self.trainers.critic is not None:  # PPO: the critic's V feeds GAE, and GAE's returns train it
            batch = self.trainers.values(batch)
            adv_params["values"] = batch.values
            batch.returns = A.gae_returns(rewards, batch.response_mask, batch.values, old_logprobs=batch.old_logprobs,
                                          ref_logprobs=batch.ref_logprobs, **algo["advantage_params"])
        batch.advantages = A.compute_advantages(algo["advantage"], rewards, batch.group_index,
                                                mask=batch.response_mask, old_logprobs=batch.old_logprobs,
                                                ref_logprobs=batch.ref_logprobs, **adv_params)
        # 5. policy-gradient updates: ppo_epochs x mini_batches optimizer steps
        t_train = time.perf_counter()
        train_metrics = self.trainers.update(batch, mini_batches=algo["mini_batches"], epochs=algo["ppo_epochs"],
                                             spec=algorithm_spec(algo, self.cfg["rollout"], self.dcmdp))
        train_s = time.perf_counter() - t_train
        self._guard_nonfinite(train_metrics, step)
        # 6. new weights to every vLLM worker (async: once the batches generated ahead are finished)
        if self.ahead is not None:
            info["perf/wait_s"] += self.ahead.drain()
        wake_s = self.rollouts.wake_up()  # weights resident again before the sync writes into them
        sync_s = self.sync(version=step + 1)
        # 7. metrics
        metrics = {**rollout_metrics(groups), **train_metrics, **info, **mismatch_report(batch)}
        if self.cfg["trainer"]["check_weight_sync"]:
            metrics["mismatch/weight_sync_max_abs"] = weight_sync_error(self.trainers.state_dict(),
                                                                        self.rollouts.engine_weights())
        if self.dcmdp is not None:
            metrics.update({f"train/{k}": v for k, v in self.dcmdp.update(train_metrics["train/dcmdp_delta"]).items()})
        step_s = time.perf_counter() - t0
        metrics.update({"perf/logprob_s": logprob_s, "perf/train_s": train_s, "perf/sync_s": sync_s,
                        "perf/step_s": step_s, "perf/tokens_per_s": batch.num_tokens / step_s,
                        "perf/weight_sync_share": sync_s / step_s, "perf/sleep_s": sleep_s + wake_s,
                        "rollout/worker_restarts": self.rollouts.restarts,
                        "train/advantage_abs_mean": batch.advantages.abs().mean().item()})
        return metrics

    def next_groups(self, step: int) -> tuple[list, dict]:
        """This step's scored groups: collected now (sync), or ahead of time (async), where groups
        generated more than `max_staleness` weight versions ago are dropped (and counted)."""
        if self.ahead is None:
            groups, info = self.collect_groups(step)
            info["perf/wait_s"] = info["perf/generate_s"] + info["perf/verify_s"]
        else:
            (groups, info), waited = self.ahead.take(step)
            info = dict(info, **{"perf/wait_s": waited})
            fresh = [g for g in groups if all(step - s.version <= self.max_staleness for s in g.samples)]
            stale = sum(len(g.samples) for g in groups) - sum(len(g.samples) for g in fresh)
            info["rollout/dropped_stale_samples"] = stale
            if not fresh:  # everything too old (e.g. max_staleness lowered on resume): generate anew
                groups, again = self.collect_groups(step)
                info = {k: info.get(k, 0) + v for k, v in again.items()} | {"rollout/dropped_stale_samples": stale}
            else:
                groups = fresh
        staleness = [step - s.version for g in groups for s in g.samples]
        self.counts["generated"] += info["rollout/generated_samples"]
        self.counts["trained"] += sum(len(g.samples) for g in groups)
        self.counts["dropped"] += info["rollout/filtered_samples"] + info.get("rollout/dropped_stale_samples", 0)
        info.update({"rollout/staleness_mean": sum(staleness) / len(staleness), "rollout/staleness_max": max(staleness),
                     **{f"rollout/{k}_samples_total": v for k, v in self.counts.items()}})
        return groups, info

    def _guard_nonfinite(self, metrics: dict, step: int) -> None:
        """Steps with a non-finite loss or gradient are skipped by the trainer; too many in a row stop the run."""
        self.nonfinite_in_row = self.nonfinite_in_row + 1 if metrics.get("train/nonfinite_skipped_steps") else 0
        limit = self.cfg["trainer"]["max_nonfinite_steps"]
        if self.nonfinite_in_row >= limit:
            raise RuntimeError(f"non-finite loss or gradient in {limit} steps in a row (last: step {step + 1}); "
                               "stopping. Resume from the last checkpoint with resume=auto after fixing the cause.")

    def after_step(self, done: int) -> None:
        trainer = self.cfg["trainer"]
        k = self.cfg["logger"]["samples_every"]
        if k and done % k == 0 and getattr(self, "last_groups", None):
            rows = [[g.problem["prompt"], s.text, r, res.reason, s.version]
                    for g in self.last_groups[:4] for s, r, res in zip(g.samples, g.rewards, g.results)][:16]
            self.run.tracker.log_table(done, "rollout/samples", ["prompt", "response", "reward", "reason", "version"],
                                       rows)
        every = self.cfg["eval"]["every_steps"]
        if every and done % every == 0:
            ev = self.evaluate()
            self.run.tracker.log_table(done, "eval/samples", ["prompt", "response", "gold", "reason"], ev["examples"])
        if trainer["save_every"] and done % trainer["save_every"] == 0 and done < trainer["total_steps"]:
            self.checkpoint(done)

    def evaluate(self) -> dict:
        run = self.run
        return evaluate(self.rollouts, run.verifier, run.eval_problems, run.eval_prompt_ids, self.cfg["rollout"],
                        seed=self.cfg["seed"] + 7)

    def collect_groups(self, step: int) -> tuple[list, dict]:
        """One batch of prompts; with dynamic sampling, more batches (at most `max_gen_batches` in all)
        until `prompts_per_step` groups with mixed correctness are in hand. Also returns timings and
        the sample counts (every generated sample is either trained on or counted as filtered)."""
        algo, run = self.algo, self.run
        if self.offline is not None:
            groups, timing, rounds = self.offline.next_groups(step)
            n = sum(len(g.samples) for g in groups)
            return groups, {**timing, "rollout/extra_gen_rounds": rounds, "rollout/generated_samples": n,
                            "rollout/filtered_samples": 0}
        target = self.cfg["data"]["prompts_per_step"]
        kept, info = [], {"perf/generate_s": 0.0, "perf/verify_s": 0.0, "rollout/generated_samples": 0}
        rounds = algo["max_gen_batches"] if algo["dynamic_sampling"] else 1
        for r in range(rounds):
            problems = run.sampler.next_batch()
            # a seed per (step, round) makes sampling a function of the weights and prompts alone, so a
            # resumed run, or a restarted worker, draws exactly the samples of an uninterrupted one
            params = self.step_params(step, r)
            groups, t = generate_and_score(self.rollouts, run.verifier, problems, run.prompt_ids(problems),
                                           params, self.reward_cfg)
            for k in t:
                info[k] += t[k]
            info["rollout/generated_samples"] += sum(len(g.samples) for g in groups)
            info["rollout/extra_gen_rounds"] = r
            if not algo["dynamic_sampling"]:
                kept = groups
                break
            kept += [g for g in groups if _informative(g)]
            if len(kept) >= target:
                kept = kept[:target]
                break
        # never train on nothing: when every group was uninformative, the last round's groups stand in
        kept = kept or groups
        info["rollout/filtered_samples"] = info["rollout/generated_samples"] - sum(len(g.samples) for g in kept)
        return kept, info

    def step_params(self, step: int, gen_round: int = 0) -> dict:
        return dict(self.params, seed=self.cfg["seed"] * 1_000_003 + step * 101 + gen_round)


def _informative(group) -> bool:
    """DAPO's filter: a group whose samples are all right or all wrong carries no gradient."""
    correct = torch.tensor(group.correct, dtype=torch.float32)
    return bool(A.dynamic_sampling_keep(correct, torch.zeros(len(correct), dtype=torch.long)).all())

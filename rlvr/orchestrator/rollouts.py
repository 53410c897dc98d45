"""Where a step's scored groups come from: two strategies side by side.

`Collector(step)` makes one step's groups (prompts -> vLLM samples -> verified rewards; DAPO's extra rounds;
or the logged samples of `rollout.source=offline`). `SyncRollouts` calls it when the step asks, with the
current weights: exactly on-policy. `AsyncRollouts` runs it for the next `max_staleness` steps in a
background thread while the current step trains, so a step costs about max(generate, train) instead of
their sum; a sample is then up to `max_staleness` weight versions old (its `version` says which).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from rlvr import algorithms as A
from rlvr.config import Config
from rlvr.orchestrator.steps import generate_and_score, reward_part_metrics, sampling_params
from rlvr.verifier import reward_settings


class Collector:
    """One step's scored groups: one batch of prompts, or with dynamic sampling more batches (at most
    `max_gen_batches`) until `prompts_per_step` groups of mixed correctness are in hand. Every generated
    sample is either trained on or counted as filtered."""

    def __init__(self, cfg: Config, run, rollouts, offline=None):
        self.cfg, self.run, self.rollouts, self.offline = cfg, run, rollouts, offline
        self.base_params = sampling_params(cfg.rollout)
        self.rewards = reward_settings(cfg)  # shaped_rewards' settings (custom reward functions imported)

    def params(self, step: int, gen_round: int = 0) -> dict:
        # a seed per (step, round) makes sampling a function of the weights and prompts alone, so a resumed
        # run, or a restarted worker, draws exactly the samples of an uninterrupted one
        return dict(self.base_params, seed=self.cfg.seed * 1_000_003 + step * 101 + gen_round)

    def __call__(self, step: int) -> tuple[list, dict]:
        if self.offline is not None:
            groups, timing, rounds = self.offline.next_groups(step)
            n = sum(len(g.samples) for g in groups)
            return groups, {**timing, "rollout/extra_gen_rounds": rounds, "rollout/generated_samples": n,
                            "rollout/filtered_samples": 0}
        algo, run = self.cfg.algorithm, self.run
        kept, info = [], {"perf/generate_s": 0.0, "perf/verify_s": 0.0, "rollout/generated_samples": 0}
        parts: dict[str, list[float]] = {}  # custom reward functions' values, over every generated sample
        for r in range(algo.max_gen_batches if algo.dynamic_sampling else 1):
            problems = run.sampler.next_batch()
            groups, timing, round_parts = generate_and_score(
                self.rollouts, run.verifier, problems, run.prompt_ids(problems), self.params(step, r), self.rewards,
                prompts=self.prompt_texts(problems))
            for k in timing:
                info[k] += timing[k]
            for name, values in round_parts.items():
                parts.setdefault(name, []).extend(values)
            info["rollout/generated_samples"] += sum(len(g.samples) for g in groups)
            info["rollout/extra_gen_rounds"] = r
            if not algo.dynamic_sampling:
                kept = groups
                break
            kept += [g for g in groups if _informative(g)]
            if len(kept) >= self.cfg.data.prompts_per_step:
                kept = kept[:self.cfg.data.prompts_per_step]
                break
        kept = kept or groups  # never train on nothing: when every group was uninformative, the last round's
        info["rollout/filtered_samples"] = info["rollout/generated_samples"] - sum(len(g.samples) for g in kept)
        return kept, info | reward_part_metrics(parts)

    def prompt_texts(self, problems: list[dict]) -> list[str] | None:
        """The prompts as the model is sent them, for custom reward functions (None: not needed)."""
        if self.cfg.algorithm.reward != "custom":
            return None
        from rlvr.data import prompt_texts

        return prompt_texts(self.run.tokenizer, problems, self.cfg.data)


def _informative(group) -> bool:
    """DAPO's filter: a group whose samples are all right or all wrong carries no gradient."""
    correct = torch.tensor(group.correct, dtype=torch.float32)
    return bool(A.dynamic_sampling_keep(correct, torch.zeros(len(correct), dtype=torch.long)).all())


class SyncRollouts:
    """Exactly on-policy: the step's groups are generated when it asks, by the weights it trains."""

    def __init__(self, collect: Collector, rollouts):
        self.collect, self.rollouts = collect, rollouts
        self.counts = {"generated": 0, "trained": 0, "dropped": 0}

    def next(self, step: int) -> tuple[list, dict]:
        groups, info = self.collect(step)
        info["perf/wait_s"] = info["perf/generate_s"] + info["perf/verify_s"]
        return groups, account(self.counts, step, groups, info)

    def yield_device(self) -> float:
        """Colocated GPUs: vLLM sleeps (weights offloaded, KV cache dropped) while the trainer works."""
        return self.rollouts.sleep()

    def settle(self) -> float:
        return 0.0

    def pending(self) -> dict:
        return {}

    def restore(self, pending: dict) -> None:
        pass

    def close(self) -> None:
        pass


class AsyncRollouts(SyncRollouts):
    """Generation runs ahead: one thread collects the next steps in order (prompts are drawn in sync mode's
    order). Every queued collection finishes before new weights are synced, so a whole batch, DAPO's rounds
    included, comes from one weight version and a run is a function of its seed alone. Groups more than
    `max_staleness` versions old are dropped and counted."""

    def __init__(self, collect: Collector, rollouts, max_staleness: int, total_steps: int):
        super().__init__(collect, rollouts)
        self.max_staleness, self.total_steps = max_staleness, total_steps
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlvr-rollouts-ahead")
        self._pending: dict[int, Future] = {}

    def next(self, step: int) -> tuple[list, dict]:
        for s in range(step, min(step + self.max_staleness, self.total_steps - 1) + 1):
            if s not in self._pending:
                self._pending[s] = self._pool.submit(self.collect, s)
        start = time.perf_counter()
        groups, info = self._pending.pop(step).result()
        info = dict(info, **{"perf/wait_s": time.perf_counter() - start})
        fresh = [g for g in groups if all(step - s.version <= self.max_staleness for s in g.samples)]
        stale = sum(len(g.samples) for g in groups) - sum(len(g.samples) for g in fresh)
        info["rollout/dropped_stale_samples"] = stale
        if fresh:
            groups = fresh
        else:  # everything too old (e.g. max_staleness lowered on resume): generate anew
            groups, again = self.collect(step)
            info = {k: v if k.startswith("rollout/reward/") else info.get(k, 0) + v  # means: the new ones
                    for k, v in again.items()} | {"rollout/dropped_stale_samples": stale}
        return groups, account(self.counts, step, groups, info)

    def yield_device(self) -> float:
        return 0.0  # vLLM keeps generating ahead while the trainer works

    def settle(self) -> float:
        """Wait for every queued collection (before the weights change under them); errors surface here."""
        start = time.perf_counter()
        for future in self._pending.values():
            future.result()
        return time.perf_counter() - start

    def pending(self) -> dict:
        """Finished collections not trained on yet, by step (for checkpoints: a resumed run trains on
        exactly these, since they were generated by weights older than the checkpoint's)."""
        self.settle()
        return {s: f.result() for s, f in sorted(self._pending.items())}

    def restore(self, pending: dict) -> None:
        for s, result in pending.items():
            done = Future()
            done.set_result(result)
            self._pending[int(s)] = done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def account(counts: dict, step: int, groups: list, info: dict) -> dict:
    """Running sample counts (every generated sample is trained on or dropped) and staleness."""
    staleness = [step - s.version for g in groups for s in g.samples]
    counts["generated"] += info["rollout/generated_samples"]
    counts["trained"] += sum(len(g.samples) for g in groups)
    counts["dropped"] += info["rollout/filtered_samples"] + info.get("rollout/dropped_stale_samples", 0)
    info.update({"rollout/staleness_mean": sum(staleness) / len(staleness), "rollout/staleness_max": max(staleness),
                 **{f"rollout/{k}_samples_total": v for k, v in counts.items()}})
    return info


def make_rollouts(cfg: Config, collect: Collector, rollouts):
    if cfg.orchestrator.mode == "async":
        return AsyncRollouts(collect, rollouts, cfg.orchestrator.max_staleness, cfg.trainer.total_steps)
    return SyncRollouts(collect, rollouts)

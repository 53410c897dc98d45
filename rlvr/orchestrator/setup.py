"""Everything a run needs before the loop: directories, plugins, data, model, tokenizer, verifier, logging."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch

from rlvr.config import Config, as_dict
from rlvr.orchestrator.checkpoint import find_resume_checkpoint, load_driver_state
from rlvr.orchestrator.signals import children_leave_stopping_to_the_driver


def start_workers(cfg: Config, run: RunSetup):
    """Ray, one placement group, the trainer ranks (with a reference model if a KL term needs one)
    and the vLLM rollout workers."""
    from rlvr.orchestrator.algorithm import AlgorithmDriver
    from rlvr.orchestrator.groups import RolloutGroup, TrainerGroup
    from rlvr.orchestrator.placement import Placement, start_ray

    start_ray(cfg.cluster, run.cache_dir, kv_cache_gb=cfg.rollout.kv_cache_gb)
    placement = Placement(cfg.trainer.num_ranks, cfg.rollout.num_workers, cpus=cfg.cluster.cpus_per_actor,
                          gpus=cfg.cluster.gpus_per_actor, mode=cfg.cluster.placement)
    algo = AlgorithmDriver(cfg)
    trainers = TrainerGroup(placement, run.model_dir, cfg, with_reference=algo.needs_reference, critic=algo.critic)
    rollouts = RolloutGroup(placement, run.model_dir, cfg)
    (run.output_dir / "placement.json").write_text(
        json.dumps({**placement.describe(), "rollout_workers": rollouts.info}, indent=2))
    run.log(f"ready in {time.perf_counter() - run.started:.1f}s: {len(trainers.ranks)} trainer ranks "
            f"(ZeRO-{cfg.trainer.zero_stage}), {len(rollouts.workers)} vLLM workers, "
            f"reference={algo.needs_reference}")
    return trainers, rollouts, placement


def shutdown(cfg: Config, placement) -> None:
    import ray

    placement.remove()
    if not cfg.cluster.address:
        ray.shutdown()


class RunSetup:
    def __init__(self, cfg: Config):
        from transformers import AutoTokenizer

        from rlvr.data import PromptSampler, load_problem_sets, tokenize_prompts
        from rlvr.models import prepare_model
        from rlvr.plugins import import_plugins
        from rlvr.tracking import Tracker
        from rlvr.verifier import make_verifier_from_config

        self.started = time.perf_counter()
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir).resolve()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = str(Path(cfg.cache_dir).resolve())
        # resume: the driver's side (step, data position, W&B run), settled before any model is prepared;
        # the loop restores the workers
        self.resume_from = find_resume_checkpoint(cfg.resume, self.output_dir)
        self.resume_state = load_driver_state(self.resume_from) if self.resume_from else {}
        self.start_step = self.resume_state.get("step", 0)
        if self.resume_from:
            _truncate_metrics(self.output_dir / "metrics.jsonl", self.start_step)
            self.log(f"resume={cfg.resume}: resuming from step {self.start_step} ({self.resume_from})")
        else:
            if cfg.resume == "auto":
                self.log(f"resume=auto: no complete checkpoint in {self.output_dir}: starting fresh")
            _move_previous_run(self.output_dir, self.log)
        (self.output_dir / "config.json").write_text(json.dumps(redacted(cfg), indent=2))
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        import_plugins(cfg.algorithm.plugins)

        self.train_problems, self.eval_problems, self.warmstart_problems = load_problem_sets(cfg.data, cfg.seed)
        self.model_dir = prepare_model(cfg.model, self.warmstart_problems, cache_dir=self.cache_dir,
                                       seed=cfg.seed, log=self.log)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._tokenize = lambda problems: tokenize_prompts(self.tokenizer, problems, cfg.data)
        self._drop_long_prompts(cfg)
        self.sampler = PromptSampler(self.train_problems, cfg.data.prompts_per_step, cfg.seed)
        with children_leave_stopping_to_the_driver():  # the whole job signalled: the driver stops the pool
            self.verifier = make_verifier_from_config(cfg.verifier)
        if self.resume_from:
            self.sampler.load_state_dict(self.resume_state["sampler"])
        self.tracker = Tracker(str(self.output_dir), config=redacted(cfg), backends=cfg.logger.backends,
                               wandb_cfg=cfg.logger.wandb, wandb_run_id=self.resume_state.get("wandb_run_id"),
                               total_steps=cfg.trainer.total_steps, progress=cfg.logger.progress,
                               start_step=self.start_step)

    def _drop_long_prompts(self, cfg: Config) -> None:
        """Prompts that leave no room for `rollout.max_tokens` in the context go now, counted in one line,
        before any worker starts (vLLM would fail on them mid-run)."""
        from rlvr.data.problem_sets import drop_long_prompts, prompt_token_limit

        limit, why = prompt_token_limit(cfg.data.max_prompt_tokens, max_tokens=cfg.rollout.max_tokens,
                                        model_dir=self.model_dir, max_model_len=cfg.rollout.max_model_len)
        self.train_problems, _ = drop_long_prompts(self.train_problems, self._tokenize(self.train_problems),
                                                   limit, why, self.log, "training problems")
        self.eval_problems, self.eval_prompt_ids = drop_long_prompts(
            self.eval_problems, self._tokenize(self.eval_problems), limit, why, self.log, "held-out problems")

    def prompt_ids(self, problems: list[dict]) -> list[list[int]]:
        return self._tokenize(problems)

    def log(self, message: str) -> None:
        print(f"[rlvr] {message}", flush=True)

    def finish(self, *, before: dict, after: dict, hf_checkpoint: str, interrupted: str | None = None) -> dict:
        rewards = _read_rewards(self.output_dir / "metrics.jsonl")
        cfg = self.cfg
        summary = {
            "steps": len(rewards) if interrupted else cfg.trainer.total_steps,
            "wall_s": time.perf_counter() - self.started, "interrupted": interrupted,
            "heldout_accuracy_before": before.get("accuracy"), "heldout_accuracy_after": after.get("accuracy"),
            "heldout_greedy_accuracy_before": before.get("greedy_accuracy"),
            "heldout_greedy_accuracy_after": after.get("greedy_accuracy"),
            "heldout_eval": {"temperature": cfg.rollout.eval_temperature, "n": cfg.rollout.eval_n,
                             "problems": len(self.eval_problems)},
            "hf_checkpoint": hf_checkpoint,
            "reward_first5": sum(rewards[:5]) / max(1, len(rewards[:5])),
            "reward_last5": sum(rewards[-5:]) / max(1, len(rewards[-5:])),
            "algorithm": cfg.algorithm.name, "output_dir": str(self.output_dir),
        }
        self.tracker.summary(summary)
        self.tracker.close()
        self.verifier.close()
        self.log(f"reward mean, first 5 steps {summary['reward_first5']:.3f} -> last 5 steps "
                 f"{summary['reward_last5']:.3f}; summary: {self.output_dir / 'summary.json'}")
        return summary


def redacted(cfg: Config) -> dict:
    """The config as logged (config.json, W&B): plain dicts, secrets replaced."""
    out = as_dict(cfg)
    if out["verifier"]["token"]:
        out["verifier"]["token"] = "***"
    return out


RUN_FILES = ("metrics.jsonl", "completions.jsonl", "summary.json", "checkpoints")


def _move_previous_run(output_dir: Path, log) -> None:
    """A fresh start never appends to another run's files: they move to `previous_runs/<n>/`."""
    found = [name for name in RUN_FILES if (output_dir / name).exists()]
    if not found:
        return
    root = output_dir / "previous_runs"
    dest = root / str(len(list(root.glob("*"))) + 1 if root.exists() else 1)
    dest.mkdir(parents=True)
    for name in found:
        (output_dir / name).rename(dest / name)
    log(f"{output_dir} held another run's {', '.join(found)}: moved to {dest} (resume=auto continues a run)")


def read_metrics_lines(path: Path) -> list[dict]:
    """metrics.jsonl's steps; a torn last line (what a killed run leaves) is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # torn by a kill mid-write
    return rows


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metrics of steps after the checkpoint (they are about to be recomputed) and any torn line."""
    if path.exists():
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= last_step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # torn by a kill mid-write
        path.write_text("".join(line + "\n" for line in keep))


def _read_rewards(path: Path) -> list[float]:
    return [row["rollout/reward_mean"] for row in read_metrics_lines(path)]

"""Everything a run needs before the loop: directories, plugins, data, model, tokenizer, verifier, logging."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch

from rlvr.orchestrator.checkpoint import find_resume_checkpoint, load_driver_state


class RunSetup:
    def __init__(self, cfg: dict):
        from transformers import AutoTokenizer

        from rlvr.data import PromptSampler
        from rlvr.models import prepare_model
        from rlvr.orchestrator.steps import tokenize_prompts
        from rlvr.plugins import import_plugins
        from rlvr.tracking import Tracker

        self.started = time.perf_counter()
        self.cfg = cfg
        self.output_dir = Path(cfg["output_dir"]).resolve()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = str(Path(cfg["cache_dir"]).resolve())
        (self.output_dir / "config.json").write_text(json.dumps(redacted(cfg), indent=2))
        random.seed(cfg["seed"])
        torch.manual_seed(cfg["seed"])
        import_plugins(cfg["algorithm"]["plugins"])

        self.train_problems, self.eval_problems, self.warmstart_problems = load_problem_sets(cfg)
        self.model_dir = prepare_model(cfg["model"], self.warmstart_problems, cache_dir=self.cache_dir,
                                       seed=cfg["seed"], log=self.log)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._tokenize = lambda problems: tokenize_prompts(self.tokenizer, problems, cfg["data"])
        self.eval_prompt_ids = self._tokenize(self.eval_problems)
        self.sampler = PromptSampler(self.train_problems, cfg["data"]["prompts_per_step"], cfg["seed"])
        self.verifier = make_verifier_from_config(cfg["verifier"])
        # resume: the driver's side (step, data position, W&B run); the loop restores the workers
        self.resume_from = find_resume_checkpoint(cfg.get("resume"), self.output_dir)
        self.resume_state = load_driver_state(self.resume_from) if self.resume_from else {}
        self.start_step = self.resume_state.get("step", 0)
        if self.resume_from:
            self.sampler.load_state_dict(self.resume_state["sampler"])
            _truncate_metrics(self.output_dir / "metrics.jsonl", self.start_step)
            self.log(f"resuming from {self.resume_from} at step {self.start_step}")
        log_cfg = cfg["logger"]
        wandb_cfg = dict(log_cfg["wandb"], run_id=self.resume_state.get("wandb_run_id"))
        self.tracker = Tracker(str(self.output_dir), config=redacted(cfg), backends=log_cfg["backends"],
                               wandb_cfg=wandb_cfg, total_steps=cfg["trainer"]["total_steps"],
                               progress=log_cfg["progress"], start_step=self.start_step)

    def prompt_ids(self, problems: list[dict]) -> list[list[int]]:
        return self._tokenize(problems)

    def log(self, message: str) -> None:
        print(f"[rlvr] {message}", flush=True)

    def finish(self, *, before: dict, after: dict, hf_checkpoint: str, interrupted: str | None = None) -> dict:
        rewards = _read_rewards(self.output_dir / "metrics.jsonl")
        summary = {
            "steps": len(rewards) if interrupted else self.cfg["trainer"]["total_steps"],
            "wall_s": time.perf_counter() - self.started, "interrupted": interrupted,
            "heldout_accuracy_before": before.get("accuracy"), "heldout_accuracy_after": after.get("accuracy"),
            "heldout_greedy_accuracy_before": before.get("greedy_accuracy"),
            "heldout_greedy_accuracy_after": after.get("greedy_accuracy"),
            "heldout_eval": {"temperature": self.cfg["rollout"]["eval_temperature"], "n": self.cfg["rollout"]["eval_n"],
                             "problems": len(self.eval_problems)},
            "hf_checkpoint": hf_checkpoint,
            "reward_first5": sum(rewards[:5]) / max(1, len(rewards[:5])),
            "reward_last5": sum(rewards[-5:]) / max(1, len(rewards[-5:])),
            "algorithm": self.cfg["algorithm"]["name"], "output_dir": str(self.output_dir),
        }
        self.tracker.summary(summary)
        self.tracker.close()
        self.verifier.close()
        self.log(f"reward mean, first 5 steps {summary['reward_first5']:.3f} -> last 5 steps "
                 f"{summary['reward_last5']:.3f}; summary: {self.output_dir / 'summary.json'}")
        return summary


def redacted(cfg: dict) -> dict:
    """The config as logged (config.json, W&B): secrets replaced."""
    out = json.loads(json.dumps(cfg))
    if out.get("verifier", {}).get("token"):
        out["verifier"]["token"] = "***"
    return out


def load_problem_sets(cfg: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, held-out, warm-start) problems: generated ones, or the configured files."""
    from rlvr.data import generate_problems, load_problems

    data = cfg["data"]
    gen = data["generated"]
    if str(data["train_path"] or "").startswith("reasoning_gym:"):  # generated offline, held-out disjoint
        from rlvr.data.reasoning_gym import load_train_heldout

        train, heldout = load_train_heldout(data["train_path"], data["eval_path"], train_split=data["train_split"],
                                            eval_split=data["eval_split"])
    elif data["train_path"]:
        kwargs = dict(prompt_key=data["prompt_key"], answer_key=data["answer_key"], format=data["format"],
                      on_bad_row=data["on_bad_row"], subset=data["subset"])
        train = load_problems(data["train_path"], split=data["train_split"], **kwargs)
        heldout = (load_problems(data["eval_path"], split=data["eval_split"], **kwargs) if data["eval_path"]
                   else train[: data["eval_size"] or None])
    else:
        train = generate_problems(gen["train_size"], cfg["seed"], "train", max_operand=gen["max_operand"],
                                  ops=list(gen["ops"]))
        heldout = generate_problems(gen["heldout_size"], cfg["seed"], "heldout", max_operand=gen["max_operand"],
                                    ops=list(gen["ops"]))
    if data["eval_size"]:
        heldout = heldout[: data["eval_size"]]
    warmstart = [p for p in train if "solution" in p]
    return train, heldout, warmstart


def reward_config(cfg: dict) -> dict:
    algo = cfg["algorithm"]
    return {"kind": algo["reward"], "format_weight": cfg["verifier"]["format_weight"],
            "custom": cfg["verifier"]["custom_reward"], "overlong": algo["overlong"]}


def make_verifier_from_config(v: dict):
    from rlvr.verifier import make_verifier

    return make_verifier(mode=v["mode"], workers=v["workers"], timeout_s=v["timeout_s"], max_chars=v["max_chars"],
                         memory_mb=v["memory_mb"], strict=v["strict"], answer_format=v["answer_format"],
                         url=v["url"], token=v["token"])


def critic_config(cfg: dict) -> dict | None:
    """PPO's value model settings when the advantage estimator is GAE (None: no critic)."""
    from rlvr.config import resolve_critic

    return resolve_critic(cfg["algorithm"], cfg["optim"])


def algorithm_spec(algo: dict, rollout: dict, dcmdp) -> dict:
    """What the trainer needs to compute the loss: registry key, params, aggregation, temperature."""
    params = dict(algo["objective_params"])
    if algo.get("correction") and algo["correction"].get("mode", "none") != "none":
        params["correction"] = dict(algo["correction"])
    if dcmdp is not None:
        params.update(dcmdp_lambda=dcmdp.value, tolerance=dcmdp.tolerance)
    return {"objective": algo["objective"], "objective_params": params, "loss_agg_mode": algo["loss_agg_mode"],
            "horizon": rollout["max_tokens"], "temperature": rollout["temperature"]}


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metrics of steps after the checkpoint: they are about to be recomputed."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        keep = [line for line in lines if json.loads(line)["step"] <= last_step]
        path.write_text("".join(line + "\n" for line in keep))


def _read_rewards(path: Path) -> list[float]:
    if not path.exists():
        return []
    return [json.loads(line)["rollout/reward_mean"] for line in path.read_text().splitlines() if line.strip()]

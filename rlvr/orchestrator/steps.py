"""The pieces of one RL step that the loop strings together: prompts in, scored groups out, batches,
held-out evaluation. Nothing here knows about Ray actors beyond the group handles it is given."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from rlvr.batch import Batch, build_batch
from rlvr.rollout.engine import Sample


@dataclass
class Group:
    """One prompt and its n scored samples."""

    problem: dict
    prompt_ids: list[int]
    samples: list[Sample] = field(default_factory=list)
    results: list = field(default_factory=list)     # VerifyResult per sample
    rewards: list[float] = field(default_factory=list)

    @property
    def correct(self) -> list[bool]:
        return [r.reason == "correct" for r in self.results]


def tokenize_prompts(tokenizer, problems: list[dict], data_cfg: dict) -> list[list[int]]:
    from rlvr.data import format_prompt

    chat = data_cfg["template"] == "chat"
    texts = [format_prompt(p["prompt"], data_cfg["template"], tokenizer=tokenizer, system=data_cfg.get("system_prompt"),
                           instruction=data_cfg.get("instruction")) for p in problems]
    return [tokenizer(t, add_special_tokens=not chat)["input_ids"] for t in texts]


def sampling_params(rollout_cfg: dict, *, evaluation: bool = False, seed: int | None = None) -> dict:
    return dict(n=1 if evaluation else rollout_cfg["n"],
                temperature=rollout_cfg["eval_temperature"] if evaluation else rollout_cfg["temperature"],
                max_tokens=rollout_cfg["max_tokens"], top_p=1.0 if evaluation else rollout_cfg["top_p"],
                stop=list(rollout_cfg["stop"]), seed=seed)


def generate_and_score(rollouts, verifier, problems: list[dict], prompt_ids: list[list[int]], params: dict,
                       reward_cfg: dict) -> tuple[list[Group], dict]:
    """Generate n samples per prompt, verify each against its gold answer, and turn results into rewards."""
    from rlvr.verifier import compute_rewards

    samples, gen_s = rollouts.generate(prompt_ids, params)
    groups = [Group(problem=p, prompt_ids=ids) for p, ids in zip(problems, prompt_ids)]
    for s in samples:
        groups[s.prompt_index].samples.append(s)
    flat = [(g, s) for g in groups for s in g.samples]
    start = time.perf_counter()
    results = verifier.verify([s.text for _, s in flat], [g.problem["answer"] for g, _ in flat])
    verify_s = time.perf_counter() - start
    rewards = compute_rewards(results, [s.text for _, s in flat], kind=reward_cfg["kind"],
                              format_weight=reward_cfg["format_weight"], custom=reward_cfg["custom"])
    overlong = reward_cfg.get("overlong") or {}
    if overlong.get("enabled"):
        from rlvr.algorithms import overlong_penalty
        from rlvr.config import overlong_cache_len

        lengths = torch.tensor([len(s.token_ids) for _, s in flat], dtype=torch.float32)
        cache_len = overlong_cache_len(overlong, params["max_tokens"])
        penalty = overlong_penalty(lengths, params["max_tokens"], cache_len).tolist()
        rewards = [r + p for r, p in zip(rewards, penalty)]
    for (g, _), res, rew in zip(flat, results, rewards):
        g.results.append(res)
        g.rewards.append(float(rew))
    return groups, {"perf/generate_s": gen_s, "perf/verify_s": verify_s}


def to_batch(groups: list[Group], pad_id: int) -> tuple[Batch, torch.Tensor]:
    """The training batch of `groups`, and the rewards as a tensor in the same row order."""
    rows = [(gi, s) for gi, g in enumerate(groups) for s in g.samples]
    batch = build_batch([g.prompt_ids for g in groups], [s.token_ids for _, s in rows],
                        [s.logprobs for _, s in rows], [gi for gi, _ in rows], pad_id)
    rewards = torch.tensor([r for g in groups for r in g.rewards], dtype=torch.float32)
    return batch, rewards


def rollout_metrics(groups: list[Group]) -> dict:
    from rlvr.algorithms import rollout_diagnostics

    samples = [s for g in groups for s in g.samples]
    results = [r for g in groups for r in g.results]
    rewards = torch.tensor([r for g in groups for r in g.rewards])
    correct = torch.tensor([c for g in groups for c in g.correct], dtype=torch.float32)
    lengths = torch.tensor([len(s.token_ids) for s in samples], dtype=torch.float32)
    group_index = torch.tensor([i for i, g in enumerate(groups) for _ in g.samples])
    out = {
        "rollout/reward_mean": rewards.mean().item(),
        "rollout/reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
        "rollout/accuracy": correct.mean().item(), "rollout/response_len_mean": lengths.mean().item(),
        "rollout/response_len_max": lengths.max().item(), "rollout/samples": len(samples),
        "rollout/truncated_frac": sum(s.finish_reason == "length" for s in samples) / len(samples),
    }
    for reason in ("correct", "wrong", "no_answer", "timeout", "too_long", "error"):
        out[f"verify/{reason}_frac"] = sum(r.reason == reason for r in results) / len(results)
    out.update({f"rollout/{k}": float(v) for k, v in rollout_diagnostics(correct, group_index).items()})
    return out


def evaluate(rollouts, verifier, problems: list[dict], prompt_ids: list[list[int]], rollout_cfg: dict,
             seed: int = 0) -> dict:
    """Held-out accuracy: the mean over `eval_n` samples per problem at `eval_temperature` (pass@1),
    with a fixed seed so that before/after compare the same random draws; plus greedy accuracy."""
    out = {}
    for name, temperature, n in (("accuracy", rollout_cfg["eval_temperature"], rollout_cfg["eval_n"]),
                                 ("greedy_accuracy", 0.0, 1)):
        if name == "greedy_accuracy" and rollout_cfg["eval_temperature"] == 0:
            out[name] = out["accuracy"]
            break
        params = dict(n=n, temperature=temperature, max_tokens=rollout_cfg["max_tokens"], top_p=1.0,
                      stop=list(rollout_cfg["stop"]), seed=seed if temperature > 0 else None)
        samples, _ = rollouts.generate(prompt_ids, params)
        samples.sort(key=lambda s: s.prompt_index)
        results = verifier.verify([s.text for s in samples], [problems[s.prompt_index]["answer"] for s in samples])
        out[name] = sum(r.reason == "correct" for r in results) / max(1, len(results))
        out.setdefault("examples", [[problems[s.prompt_index]["prompt"], s.text, problems[s.prompt_index]["answer"],
                                     r.reason] for s, r in list(zip(samples, results))[:8]])
    out["n"] = len(problems)
    return out


def mismatch_report(batch: Batch) -> dict:
    """pi_old (trainer) against mu (vLLM) on the sampled tokens, before any update of this step."""
    from rlvr.algorithms import mismatch_metrics

    out = {f"mismatch/{k.removeprefix('mismatch_')}": float(v) for k, v in mismatch_metrics(
        batch.old_logprobs, batch.rollout_logprobs, batch.response_mask).items()}
    diff = (batch.old_logprobs - batch.rollout_logprobs).abs() * batch.response_mask
    out["mismatch/logprob_abs_max"] = float(diff.max())
    out["mismatch/logprob_abs_mean"] = float(diff.sum() / batch.response_mask.sum().clamp(min=1))
    return out


def weight_sync_error(trainer_state: dict, engine_state: dict) -> float:
    """Max |trainer - engine| over every weight the engine holds (its vocabulary may be padded)."""
    worst, matched = 0.0, 0
    for name, ref in trainer_state.items():
        got = engine_state.get(name)
        if got is None:
            continue
        got = got[tuple(slice(0, s) for s in ref.shape)]
        if got.shape != ref.shape:
            raise ValueError(f"weight sync: {name} has shape {tuple(got.shape)} in the engine, "
                             f"{tuple(ref.shape)} in the trainer")
        worst = max(worst, float((got.float() - ref.float()).abs().max()))
        matched += 1
    if matched < len(engine_state) // 2:
        raise ValueError(f"weight sync: only {matched} of {len(engine_state)} engine weights matched trainer names")
    return worst

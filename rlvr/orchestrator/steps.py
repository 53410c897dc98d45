"""The pieces of one RL step that the loop strings together: prompts in, scored groups out, batches,
held-out evaluation. Nothing here knows about Ray actors beyond the group handles it is given."""

from __future__ import annotations

import time

import torch

from rlvr.batch import Batch, build_batch
from rlvr.config import RolloutConfig
from rlvr.rollout.samples import Group


def sampling_params(rollout: RolloutConfig, *, evaluation: bool = False, seed: int | None = None) -> dict:
    return dict(n=1 if evaluation else rollout.n,
                temperature=rollout.eval_temperature if evaluation else rollout.temperature,
                max_tokens=rollout.max_tokens, top_p=1.0 if evaluation else rollout.top_p,
                stop=list(rollout.stop), seed=seed)


def generate_and_score(rollouts, verifier, problems: list[dict], prompt_ids: list[list[int]], params: dict,
                       rewards: dict, prompts: list[str] | None = None) -> tuple[list[Group], dict, dict]:
    """Generate n samples per prompt, verify each against its gold answer, and turn results into rewards
    (`rewards`: `shaped_rewards`' settings; `prompts`: the prompt texts as sent, for custom reward
    functions; None: each problem's own text). Returns (groups, timings, each custom reward function's
    values by name)."""
    from rlvr.verifier.rewards import shaped_score

    samples, gen_s = rollouts.generate(prompt_ids, params)
    groups = [Group(problem=p, prompt_ids=ids) for p, ids in zip(problems, prompt_ids)]
    for s in samples:
        groups[s.prompt_index].samples.append(s)
    flat = [(g, s) for g in groups for s in g.samples]
    start = time.perf_counter()
    results = verifier.verify([s.text for _, s in flat], [g.problem["answer"] for g, _ in flat])
    verify_s = time.perf_counter() - start
    scores, parts = shaped_score(results, [s.text for _, s in flat], [len(s.token_ids) for _, s in flat], **rewards,
                                 **reward_inputs(flat, rewards["kind"], prompts))
    for (g, _), res, rew in zip(flat, results, scores):
        g.results.append(res)
        g.rewards.append(float(rew))
    return groups, {"perf/generate_s": gen_s, "perf/verify_s": verify_s}, parts


def reward_inputs(flat: list, kind: str, prompts: list[str] | None = None) -> dict:
    """What custom reward functions receive besides completions and verdicts, one entry per (group,
    sample) of `flat` (`rlvr.verifier.rewards.reward_inputs`; the prompt text is `prompts[sample.prompt_index]`,
    None: the problem's own). Nothing for the built-in kinds."""
    from rlvr.verifier.rewards import reward_inputs as inputs

    if kind != "custom":
        return {}
    texts = None if prompts is None else [prompts[s.prompt_index] for _, s in flat]
    return inputs([g.problem for g, _ in flat], texts, [s.token_ids for _, s in flat])


def reward_part_metrics(parts: dict) -> dict:
    """`rollout/reward/<name>`: each custom reward function's mean (`rlvr.verifier.rewards.part_means`)."""
    from rlvr.verifier.rewards import part_means

    return {f"rollout/reward/{name}": mean for name, mean in part_means(parts).items()}


def to_batch(groups: list[Group], pad_id: int) -> tuple[Batch, torch.Tensor]:
    """The training batch of `groups`, and the rewards as a tensor in the same row order."""
    rows = [(gi, s) for gi, g in enumerate(groups) for s in g.samples]
    batch = build_batch([g.prompt_ids for g in groups], [s.token_ids for _, s in rows],
                        [s.logprobs for _, s in rows], [gi for gi, _ in rows], pad_id)
    rewards = torch.tensor([r for g in groups for r in g.rewards], dtype=torch.float32)
    return batch, rewards


def step_metrics(perf: dict, batch: Batch, step_s: float, worker_restarts: int) -> dict:
    """The step's timings (`perf`: seconds of each phase), throughput and advantage scale."""
    return {"perf/logprob_s": perf["perf/logprob_s"], "perf/train_s": perf["perf/train_s"],
            "perf/sync_s": perf["perf/sync_s"], "perf/step_s": step_s, "perf/tokens_per_s": batch.num_tokens / step_s,
            "perf/weight_sync_share": perf["perf/sync_s"] / step_s, "perf/sleep_s": perf["perf/sleep_s"],
            "rollout/worker_restarts": worker_restarts,
            "train/advantage_abs_mean": batch.advantages.abs().mean().item()}


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


def mismatch_report(batch: Batch) -> dict:
    """pi_old (trainer) against mu (vLLM) on the sampled tokens, before any update of this step."""
    from rlvr.algorithms import mismatch_metrics

    out = {f"mismatch/{k.removeprefix('mismatch_')}": float(v) for k, v in mismatch_metrics(
        batch.old_logprobs, batch.rollout_logprobs, batch.response_mask).items()}
    diff = (batch.old_logprobs - batch.rollout_logprobs).abs() * batch.response_mask
    out["mismatch/logprob_abs_max"] = float(diff.max())
    out["mismatch/logprob_abs_mean"] = float(diff.sum() / batch.response_mask.sum().clamp(min=1))
    return out

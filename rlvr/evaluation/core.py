"""The one evaluator: held-out evaluation during training and `rlvr eval` sample and verify the same way.

``rollouts`` is anything with ``generate(prompt_ids, params) -> (samples, seconds)``: the training
run's rollout group (vLLM in Ray actors), or ``EngineRollouts`` around an in-process ``VLLMEngine``
(`rlvr eval`). ``params`` are the engine's sampling keywords (n, temperature, max_tokens, top_p, stop,
seed); the engine seeds prompt i with ``seed + PROMPT_SEED_STRIDE * i``, so a problem's samples do not
depend on the other problems of the call.
"""

from __future__ import annotations

import time


class EngineRollouts:
    """An in-process ``VLLMEngine`` behind the rollout group's ``generate(prompt_ids, params)``."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, prompt_ids: list[list[int]], params: dict) -> tuple[list, float]:
        start = time.perf_counter()
        samples = self.engine.generate(prompt_ids, **params)
        return samples, time.perf_counter() - start


def generate_sorted(rollouts, prompt_ids: list[list[int]], params: dict) -> tuple[list, float]:
    """(samples ordered by prompt, generation seconds); the sort is stable, so the samples of one prompt
    keep the order the engine gave them."""
    samples, seconds = rollouts.generate(prompt_ids, params)
    samples.sort(key=lambda s: s.prompt_index)
    return samples, seconds


def verify_samples(verifier, problems: list[dict], samples: list) -> tuple[list, float]:
    """(one ``VerifyResult`` per sample against its problem's gold answer, verification seconds)."""
    start = time.perf_counter()
    results = verifier.verify([s.text for s in samples], [problems[s.prompt_index]["answer"] for s in samples])
    return results, time.perf_counter() - start


def evaluate(rollouts, verifier, problems: list[dict], prompt_ids: list[list[int]], rollout_cfg,
             seed: int = 0) -> dict:
    """Held-out accuracy during training: the mean over ``eval_n`` samples per problem at
    ``eval_temperature`` (pass@1), with a fixed seed so that before/after compare the same random draws;
    plus greedy accuracy. ``rollout_cfg`` is the run's ``RolloutConfig``. Returns ``{"accuracy",
    "greedy_accuracy", "examples" (the first 8 of the sampled pass: prompt, response, gold, reason),
    "n" (problems)}``."""
    out = {}
    for name, temperature, n in (("accuracy", rollout_cfg.eval_temperature, rollout_cfg.eval_n),
                                 ("greedy_accuracy", 0.0, 1)):
        if name == "greedy_accuracy" and rollout_cfg.eval_temperature == 0:
            out[name] = out["accuracy"]
            break
        params = dict(n=n, temperature=temperature, max_tokens=rollout_cfg.max_tokens, top_p=1.0,
                      stop=list(rollout_cfg.stop), seed=seed if temperature > 0 else None)
        samples, _ = generate_sorted(rollouts, prompt_ids, params)
        results, _ = verify_samples(verifier, problems, samples)
        out[name] = sum(r.reason == "correct" for r in results) / max(1, len(results))
        out.setdefault("examples", [[problems[s.prompt_index]["prompt"], s.text, problems[s.prompt_index]["answer"],
                                     r.reason] for s, r in list(zip(samples, results))[:8]])
    out["n"] = len(problems)
    return out

"""Step-time benchmark: where an RL step's time goes, against the engines alone.

Runs the default job's model through the real loop for --steps steps in sync mode, then --steps more in
async mode (orchestrator.mode=async, max_staleness 1) on the same workers, then, in the same run and on
the same prompts and batch, times vLLM generating alone and the DeepSpeed ranks training alone. Prints a
table and writes --json with `sync_ratio` = sync step / (generate + train, engine-only), `async_ratio` =
async step / max(generate, train), and `weight_sync_share` = sync / step (sync mode).

    python scripts/bench_step.py --steps 10 --json bench_step.json [extra Hydra overrides]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="steps excluded from the averages")
    parser.add_argument("--json", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from rlvr.config import compose
    from rlvr.orchestrator.loop import Loop, start_workers
    from rlvr.orchestrator.setup import RunSetup, algorithm_spec
    from rlvr.orchestrator.steps import generate_and_score, to_batch
    from rlvr.orchestrator.weight_sync import WeightSync

    out = tempfile.mkdtemp(prefix="rlvr-bench-")
    cfg = compose([f"output_dir={out}", "logger.wandb.mode=disabled", "logger.progress=false",
                   f"trainer.total_steps={args.steps}", *args.overrides])
    run = RunSetup(cfg)
    trainers, rollouts, placement = start_workers(cfg, run)
    sync = WeightSync(cfg["trainer"]["weight_sync"], trainers, rollouts, placement)
    loop = Loop(cfg, run, trainers, rollouts, sync)
    steps = [loop.step(i) for i in range(args.steps)]
    measured = steps[args.warmup:] or steps
    # the same workers, continued in async mode (the first async step has nothing generated ahead)
    async_cfg = dict(cfg, orchestrator={"mode": "async", "max_staleness": 1},
                     trainer=dict(cfg["trainer"], total_steps=2 * args.steps))
    async_loop = Loop(async_cfg, run, trainers, rollouts, sync)
    async_steps = [async_loop.step(i) for i in range(args.steps, 2 * args.steps)]
    async_loop.close()
    async_measured = async_steps[args.warmup:] or async_steps

    def mean(key, of=measured):
        return statistics.mean(m[key] for m in of)

    # the engines alone, on the same work: one prompt batch generated, one batch trained
    problems = run.sampler.next_batch()
    prompt_ids = run.prompt_ids(problems)
    gen_alone, train_alone, tokens = [], [], []
    for _ in range(3):
        t = time.perf_counter()
        rollouts.generate(prompt_ids, dict(loop.params, seed=1))
        gen_alone.append(time.perf_counter() - t)
    groups, _ = generate_and_score(rollouts, run.verifier, problems, prompt_ids, dict(loop.params, seed=1),
                                   loop.reward_cfg)
    batch, rewards = to_batch(groups, run.tokenizer.pad_token_id)
    batch, _ = trainers.logprobs(batch, cfg["rollout"]["temperature"])
    from rlvr import algorithms as A

    batch.advantages = A.compute_advantages(cfg["algorithm"]["advantage"], rewards, batch.group_index,
                                            mask=batch.response_mask, old_logprobs=batch.old_logprobs,
                                            ref_logprobs=batch.ref_logprobs, **cfg["algorithm"]["advantage_params"])
    spec = algorithm_spec(cfg["algorithm"], cfg["rollout"], loop.dcmdp)
    for _ in range(3):
        t = time.perf_counter()
        trainers.logprobs(batch, cfg["rollout"]["temperature"])
        trainers.update(batch, mini_batches=cfg["algorithm"]["mini_batches"], epochs=cfg["algorithm"]["ppo_epochs"],
                        spec=spec)
        train_alone.append(time.perf_counter() - t)
        tokens.append(batch.num_tokens)

    gen_e, train_e = min(gen_alone), min(train_alone)
    phases = {k: mean(f"perf/{k}_s") for k in ("generate", "verify", "logprob", "train", "sync", "step")}
    result = {
        "steps": len(measured), "phases_s": phases, "tokens_per_s": mean("perf/tokens_per_s"),
        "engine_only_s": {"generate": gen_e, "train": train_e},
        "engine_only_tokens_per_s": {"generate": batch.num_tokens / gen_e, "train": batch.num_tokens / train_e},
        "sync_ratio": phases["step"] / (gen_e + train_e),
        "async_step_s": mean("perf/step_s", async_measured), "async_wait_s": mean("perf/wait_s", async_measured),
        "async_ratio": mean("perf/step_s", async_measured) / max(gen_e, train_e),
        "weight_sync_share": phases["sync"] / phases["step"],
    }
    print("| phase | seconds/step |\n|---|---|")
    for k, v in phases.items():
        print(f"| {k} | {v:.3f} |")
    print(f"| generate, vLLM alone | {gen_e:.3f} |\n| logprobs + train, DeepSpeed alone | {train_e:.3f} |")
    print(f"| async step (max_staleness 1) | {result['async_step_s']:.3f} |")
    print(f"\nsync_ratio {result['sync_ratio']:.2f}   async_ratio {result['async_ratio']:.2f}\n"
          f"weight_sync_share {result['weight_sync_share']:.3f}   "
          f"tokens/s {result['tokens_per_s']:.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    run.verifier.close()
    run.tracker.close()
    placement.remove()
    import ray

    ray.shutdown()


if __name__ == "__main__":
    main()

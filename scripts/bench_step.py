"""Step-time benchmark: where an RL step's time goes, against the engines alone.

Runs the default job's model through the real loop for --steps steps in sync mode, then --steps more in
async mode (orchestrator.mode=async, max_staleness 1) on the same workers. The engine-only figures are
the same work, measured in the same run right after each sync step: the DeepSpeed ranks recompute
log-probs and train on that step's own batch alone, and vLLM generates that step's prompts with that
step's seed alone (its prefix cache emptied first, as after every weight sync in the loop). Prints a
table and writes --json with `sync_ratio` = sync step / (generate + train, engine-only), `async_ratio` =
async step / max(generate, train), and `weight_sync_share` = sync / step (sync mode); all are means over
the steps after --warmup.

    python scripts/bench_step.py --steps 10 --json bench_step.json [extra Hydra overrides]
"""

from __future__ import annotations

import argparse
import dataclasses
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
    from rlvr.orchestrator.loop import Loop
    from rlvr.orchestrator.setup import RunSetup, start_workers
    from rlvr.weight_sync import WeightSync

    out = tempfile.mkdtemp(prefix="rlvr-bench-")
    cfg = compose([f"output_dir={out}", "logger.wandb.mode=disabled", "logger.progress=false",
                   f"trainer.total_steps={args.steps}", *args.overrides])
    run = RunSetup(cfg)
    trainers, rollouts, placement = start_workers(cfg, run)
    sync = WeightSync(cfg.trainer.weight_sync, trainers, rollouts, placement)
    loop = Loop(cfg, run, trainers, rollouts, sync)
    # sync steps, each followed by the engines alone on its own work: the DeepSpeed ranks recompute
    # log-probs and train on the step's batch (same shapes, so the same work; this is a second update
    # on that batch, then synced so vLLM and trainer agree again, the sync also emptying vLLM's prefix
    # cache as in the loop), and vLLM generates the step's prompts with the step's seed
    update_args = loop.algo.update_args()
    steps, gen_alone, train_alone, gen_tokens, train_tokens = [], [], [], [], []
    for i in range(args.steps):
        steps.append(loop.step(i))
        batch = loop.last_batch
        t = time.perf_counter()
        trainers.logprobs(batch, cfg.rollout.temperature)
        trainers.update(batch, **update_args)
        train_alone.append(time.perf_counter() - t)
        train_tokens.append(batch.num_tokens)
        sync(version=i + 1)
        t = time.perf_counter()
        samples, _ = rollouts.generate([g.prompt_ids for g in loop.last_groups], loop.collect.params(i))
        gen_alone.append(time.perf_counter() - t)
        gen_tokens.append((sum(len(s.token_ids) for g in loop.last_groups for s in g.samples),
                           sum(len(s.token_ids) for s in samples)))
    measured = steps[args.warmup:] or steps
    # the same workers, continued in async mode (the first async step has nothing generated ahead)
    async_cfg = dataclasses.replace(cfg, orchestrator=dataclasses.replace(cfg.orchestrator, mode="async",
                                                                             max_staleness=1),
                                    trainer=dataclasses.replace(cfg.trainer, total_steps=2 * args.steps))
    async_loop = Loop(async_cfg, run, trainers, rollouts, sync)
    async_steps = [async_loop.step(i) for i in range(args.steps, 2 * args.steps)]
    async_loop.close()
    async_measured = async_steps[args.warmup:] or async_steps

    def mean(key, of=measured):
        return statistics.mean(m[key] for m in of)

    def after_warmup(values):
        return values[args.warmup:] or values

    gen_alone, train_alone = after_warmup(gen_alone), after_warmup(train_alone)
    loop_tokens, alone_tokens = (sum(x) for x in zip(*after_warmup(gen_tokens)))
    train_tokens = statistics.mean(after_warmup(train_tokens))
    gen_e, train_e = statistics.mean(gen_alone), statistics.mean(train_alone)
    phases = {k: mean(f"perf/{k}_s") for k in ("generate", "verify", "logprob", "train", "sync", "step")}
    result = {
        "steps": len(measured), "phases_s": phases, "tokens_per_s": mean("perf/tokens_per_s"),
        "engine_only_s": {"generate": gen_e, "train": train_e},
        "engine_only_tokens_per_s": {"generate": alone_tokens / sum(gen_alone), "train": train_tokens / train_e},
        "generated_tokens": {"loop": loop_tokens, "vllm_alone": alone_tokens},
        "sync_ratio": phases["step"] / (gen_e + train_e),
        "async_step_s": mean("perf/step_s", async_measured), "async_wait_s": mean("perf/wait_s", async_measured),
        "async_phases_s": {k: mean(f"perf/{k}_s", async_measured) for k in ("wait", "logprob", "train", "sync")},
        "async_ratio": mean("perf/step_s", async_measured) / max(gen_e, train_e),
        "weight_sync_share": phases["sync"] / phases["step"],
    }
    print("| phase | seconds/step |\n|---|---|")
    for k, v in phases.items():
        print(f"| {k} | {v:.3f} |")
    print(f"| generate, vLLM alone | {gen_e:.3f} |\n| logprobs + train, DeepSpeed alone | {train_e:.3f} |")
    print(f"| async step (max_staleness 1) | {result['async_step_s']:.3f} |")
    print("| async: " + ", ".join(f"{k} {v:.3f}" for k, v in result["async_phases_s"].items()) + " | |")
    print(f"\ngenerated tokens over the measured steps: loop {loop_tokens}, vLLM alone {alone_tokens}")
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

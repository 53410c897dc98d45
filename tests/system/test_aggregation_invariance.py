"""Loss aggregation is invariant to how a mini-batch is laid out (ALGORITHMS.md section 2), through the
real DeepSpeed engine (`rlvr.trainer.engine.TrainEngine`) with real gloo ranks.

One optimizer step of plain SGD (lr 1, no weight decay, no clipping) moves the weights by exactly minus
the gradient, so comparing the weights after one `TrainEngine.update` compares gradients. The same
mini-batch is laid out three ways:

  1x1  one rank, one micro-batch of all N rows
  1x4  one rank, four micro-batches (gradient accumulation)
  2x2  two ranks, each given half of the rows (as `TrainerGroup.update` splits them), two micro-batches each
  2xT  two ranks, micro-batches by a token budget (length-sorted pieces of unequal row counts)

and all three must equal what a single process computes on the whole batch, here an independent plain
torch computation of the section-2 formulas (no DeepSpeed, no `rlvr.algorithms`). The batch has rows
of different response lengths, an empty response, and two rows with tokens but a zero mask (their
micro-batch is all-masked, so the engine's idle path runs); the ranks get different token and sequence
counts, so normalising by local counts, or letting DeepSpeed average over ranks or micro-batches, shows
up as a factor, not as noise.

Each layout runs in freshly spawned processes (`torch.multiprocessing`, spawn) that call
`init_distributed` and build a fresh `TrainEngine` per configuration from the same model directory.
"""

from __future__ import annotations

import gc
import os
import socket
import time
import traceback
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
HORIZON = 16          # H for seq-mean-token-sum-norm (>= the longest response below)
N = 8                 # rows in the mini-batch
# (name, loss_agg_mode, zero_stage): every mode under ZeRO-2, one under ZeRO-3 (parameters partitioned too)
CONFIGS = [(f"z2-{m}", m, 2) for m in MODES] + [("z3-seq-mean-token-mean", "seq-mean-token-mean", 3)]
# (name, world_size, micro_batch_size, token_budget)
LAYOUTS = [("1x1", 1, N, 0), ("1x4", 1, N // 4, 0), ("2x2", 2, N // 4, 0), ("2xT", 2, N, 24)]
# max |delta_a - delta_b| / max |delta_ref|; float32 reduction-order noise is ~1e-7 of the scale here,
# while any mistake in the counts or in undoing DeepSpeed's averaging is a factor of order 1
REL_TOL = 1e-5
SPAWN_TIMEOUT_S = 240   # 17 s on an idle machine, 70 s on a heavily loaded one


# -- the batch and the single-process reference -----------------------------------------------------------

def make_batch():
    """8 rows, responses of 5, 1, 9, 0, 3, 7, 4, 2 tokens; rows 6-7 keep their tokens but are masked out
    (as a filter would), row 3 has an empty response. Non-empty: 5 sequences, 25 tokens; rank 0 of 2
    holds 3 sequences / 15 tokens, rank 1 holds 2 / 10 (and an all-masked micro-batch)."""
    from rlvr.batch import build_batch

    g = torch.Generator().manual_seed(1234)
    prompt_lens = [3, 5, 4, 6, 3, 4, 5, 3]
    resp_lens = [5, 1, 9, 0, 3, 7, 4, 2]
    prompts = [torch.randint(4, 90, (n,), generator=g).tolist() for n in prompt_lens]
    responses = [torch.randint(4, 90, (n,), generator=g).tolist() for n in resp_lens]
    mu = [(-torch.rand(n, generator=g) * 3).tolist() for n in resp_lens]
    batch = build_batch(prompts, responses, mu, list(range(N)), pad_id=0)
    batch.response_mask[6:] = 0.0
    batch.advantages = torch.tensor([1.0, -0.5, 0.8, 0.3, -1.2, 0.6, 0.9, -0.7])
    batch.old_logprobs = batch.rollout_logprobs.clone()   # unused by pg with is_mode none
    batch.ref_logprobs = None
    assert (batch.num_seqs, batch.num_tokens) == (5, 25)
    return batch


def reference_delta(model_dir: str, batch, mode: str) -> dict[str, torch.Tensor]:
    """-grad of the section-2 value of l = -A log pi (pg, is_mode none, no KL) on the whole batch, in one
    process, written from the table rather than through rlvr.algorithms."""
    from transformers import AutoModelForCausalLM

    from rlvr.batch import response_logprobs

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logp, _ = response_logprobs(logits, batch, temperature=1.0)
    m = batch.response_mask
    loss_tok = -batch.advantages[:, None] * logp * m
    per_seq_tokens = m.sum(1)
    seqs = per_seq_tokens > 0
    if mode == "token-mean":
        value = loss_tok.sum() / m.sum()
    elif mode == "seq-mean-token-mean":
        value = (loss_tok.sum(1)[seqs] / per_seq_tokens[seqs]).mean()
    elif mode == "seq-mean-token-sum":
        value = loss_tok.sum(1)[seqs].mean()
    else:
        value = (loss_tok.sum(1)[seqs] / HORIZON).mean()
    value.backward()
    return {name: -p.grad.detach().clone() for name, p in model.named_parameters()}


# -- the ranks ----------------------------------------------------------------------------------------------

def _rank_main(rank: int, world: int, port: int, micro: int, budget: int, model_dir: str, batch_path: str, out_dir: str,
               cache_dir: str, tag: str) -> None:
    """One rank: join the gloo group, then for every configuration a fresh engine and one update."""
    err_path = Path(out_dir) / f"{tag}-rank{rank}.err"
    progress = Path(out_dir) / f"{tag}-rank{rank}.progress"   # where a hung rank was, for the failure message
    progress.write_text("starting")
    try:
        from rlvr.runtime import actor_env

        os.environ.update(actor_env(cache_dir))   # compile caches and TMPDIR in the cache
        torch.set_num_threads(1)
        import rlvr.trainer.engine as engine_module
        from rlvr.config import ModelConfig, OptimConfig, TrainerConfig
        from rlvr.trainer.engine import TrainEngine, init_distributed

        _allow_sgd_under_zero(engine_module)
        init_distributed(rank, world, "127.0.0.1", port)
        batch = torch.load(batch_path, weights_only=False)
        # exactly how TrainerGroup.update splits one mini-batch across ranks and micro-batches
        shards = batch.chunks(world)
        n_micro = max(1, max(len(s.micro_batches(micro, budget)) for s in shards))
        optim = OptimConfig(name="sgd", lr=1.0, weight_decay=0.0, warmup_steps=0)
        for name, mode, stage in CONFIGS:
            progress.write_text(f"{name}: building the engine")
            trainer = TrainerConfig(zero_stage=stage, micro_batch_size=micro, grad_clip=0.0, token_budget=budget)
            engine = TrainEngine(model_dir, optim=optim, trainer=trainer, model=ModelConfig(dtype="float32"),
                                 world_size=world, with_reference=False)
            progress.write_text(f"{name}: in TrainEngine.update")
            metrics = engine.update([shards[rank]], [(batch.num_tokens, batch.num_seqs)], [n_micro],
                                    objective="pg", objective_params={"is_mode": "none"}, loss_agg_mode=mode,
                                    horizon=HORIZON, temperature=1.0)
            progress.write_text(f"{name}: in full_state_dict")
            state = engine.full_state_dict(rank)
            if rank == 0:
                torch.save({"state": state, "metrics": metrics}, Path(out_dir) / f"{tag}-{name}.pt")
            del engine, state
            gc.collect()
        progress.write_text("final barrier")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    except BaseException:
        err_path.write_text(traceback.format_exc())
        raise


def _allow_sgd_under_zero(engine_module) -> None:
    """WORKAROUND, for this process only: DeepSpeed refuses torch.optim.SGD under ZeRO >= 1 ("untested
    ZeRO Optimizer") unless the config sets `zero_allow_untested_optimizer`, which `ds_config` does not,
    so `optim.name=sgd` fails at start-up with the default ZeRO-2. Harmless once ds_config sets it."""
    original = engine_module.ds_config

    def patched(**kwargs):
        config = original(**kwargs)
        config.setdefault("zero_allow_untested_optimizer", True)
        return config

    engine_module.ds_config = patched


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_layouts(model_dir: Path, batch_path: Path, out_dir: Path, cache_dir: Path) -> float:
    """Every layout at once (3 processes); returns the wall time."""
    ctx = torch.multiprocessing.get_context("spawn")
    procs = []
    start = time.perf_counter()
    for tag, world, micro, budget in LAYOUTS:
        port = _free_port()
        for rank in range(world):
            p = ctx.Process(target=_rank_main, args=(rank, world, port, micro, budget, str(model_dir), str(batch_path),
                                                     str(out_dir), str(cache_dir), tag), daemon=True)
            p.start()
            procs.append((tag, rank, p))
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    for _, _, p in procs:
        p.join(max(1.0, deadline - time.monotonic()))
    hung = [(t, r, p) for t, r, p in procs if p.is_alive()]
    for _, _, p in hung:   # a failed rank leaves its peer waiting in a collective
        p.kill()
        p.join(10)
    errors = "\n".join(f.read_text() for f in sorted(out_dir.glob("*.err")))
    where = {(t, r): (out_dir / f"{t}-rank{r}.progress").read_text() for t, r, _ in hung}
    assert not hung, (f"ranks still running after {SPAWN_TIMEOUT_S}s, killed: {where} (ranks that disagree on "
                      f"the number or order of collectives deadlock)\n{errors}")
    codes = {(t, r): p.exitcode for t, r, p in procs}
    assert all(c == 0 for c in codes.values()), f"rank processes failed {codes}:\n{errors}"
    return time.perf_counter() - start


# -- the test -----------------------------------------------------------------------------------------------

def test_aggregation_invariant_to_ranks_and_micro_batches(tmp_path, cache_dir):
    from transformers import AutoModelForCausalLM

    from rlvr.models.tiny import build_tiny_model

    shm_before = set(os.listdir("/dev/shm"))
    model_dir = tmp_path / "model"
    build_tiny_model(model_dir, seed=0)
    initial = {k: v.detach().clone() for k, v in AutoModelForCausalLM.from_pretrained(model_dir).state_dict().items()}
    batch = make_batch()
    batch_path = tmp_path / "batch.pt"
    torch.save(batch, batch_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    wall = _run_layouts(model_dir, batch_path, out_dir, cache_dir)
    print(f"\n{len(LAYOUTS)} layouts x {len(CONFIGS)} configurations in spawned ranks: {wall:.1f}s")

    failures = []
    for name, mode, _ in CONFIGS:
        ref = reference_delta(str(model_dir), batch, mode)
        ref_norm = torch.sqrt(sum((d.double() ** 2).sum() for d in ref.values())).item()
        scale = max(d.abs().max().item() for d in ref.values())
        results = {tag: torch.load(out_dir / f"{tag}-{name}.pt", weights_only=False) for tag, *_ in LAYOUTS}
        deltas = {}
        for tag, res in results.items():
            state = res["state"]
            missing = set(ref) - set(state)
            assert not missing, f"{name} {tag}: full_state_dict lacks {sorted(missing)[:5]}"
            deltas[tag] = {k: state[k] - initial[k] for k in ref}

        line = [f"{name:26s} |delta| max {scale:.3e}"]
        pairs = [(t, "reference", deltas[t], ref) for t in deltas]
        pairs += [("1x1", t, deltas["1x1"], deltas[t]) for t in ("1x4", "2x2", "2xT")]
        for a, b, da, db in pairs:
            r = max((da[k] - db[k]).abs().max().item() for k in ref) / scale
            line.append(f"{a}~{b} {r:.1e}")
            if not r <= REL_TOL:
                failures.append(f"{name}: {a} vs {b}: max|diff|/max|delta| = {r:.3e} > {REL_TOL}")
        # DeepSpeed's global gradient norm (what clipping would use) is the whole batch's in every layout
        for tag, res in results.items():
            norm = res["metrics"].get("train/grad_norm")
            assert norm is not None, f"{name} {tag}: no train/grad_norm in {sorted(res['metrics'])}"
            line.append(f"{tag} |g| {norm / ref_norm - 1:+.1e}")
            if abs(norm / ref_norm - 1) > 1e-4:
                failures.append(f"{name} {tag}: grad norm {norm:.6e} vs reference {ref_norm:.6e}")
            assert res["metrics"]["train/optimizer_steps"] == 1
        print("  ".join(line))
    assert not failures, "\n".join(failures)

    leaked = shm_leaks(shm_before)
    assert not leaked, f"/dev/shm entries left behind: {leaked}"


def shm_leaks(before: set[str]) -> list[str]:
    """New /dev/shm entries that no live process holds (mapped or open, matched by inode): ours,
    orphaned. Entries that other jobs on the machine hold meanwhile are not counted."""
    new = {}
    for name in set(os.listdir("/dev/shm")) - before:
        try:
            new[name] = os.stat(f"/dev/shm/{name}").st_ino
        except OSError:
            continue
    held = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps") as f:
                held.update(int(line.split()[4]) for line in f if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/dev/shm/"):
                    held.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
        except OSError:
            continue
    return sorted(name for name, ino in new.items() if ino not in held)

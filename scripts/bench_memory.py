"""Peak memory of one training step on one long response: the trainer's log-prob path against full logits.

    python scripts/bench_memory.py --tokens 16384 --vocab 151936 [--chunk-mib 512] [--baseline] [--json PATH]

Builds a random Qwen2 with vocabulary --vocab and a tiny body (hidden 64, 2 layers), one prompt of 16
tokens and one response of --tokens tokens, and runs one training step on CPU as the trainer does: the
response log-probs and entropies through `rlvr.trainer.logprobs.sequence_logprobs` (chunks of at most
--chunk-mib MiB of fp32 logits; --baseline: the full-logits path the trainer used before, i.e. a chunk
budget large enough for the whole sequence), the GRPO loss of `rlvr.algorithms.compute_policy_loss`,
backward, and an AdamW step.

How memory is measured: torch's CPU tensors come from malloc/mmap, which Python's tracemalloc does not
see, so the figure is the process's resident memory. Each measurement runs in a fresh subprocess; after
the model is built and the optimizer's state is allocated (one AdamW step on zero gradients), the
current resident size is read from /proc/self/statm (after malloc_trim, so freed set-up memory is not
counted); after the step, the peak resident size is read from getrusage(RUSAGE_SELF).ru_maxrss.
`peak_gib` = peak - resident-before: the step's peak above the model, its gradients' absence and the
optimizer state. Set-up transients cannot make it smaller, only larger (ru_maxrss is a high-water mark
over the whole process), so the figure is an upper bound of the step's own peak. Memory figures do not
depend on machine load.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import time

GIB = 2**30
PROMPT_TOKENS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, required=True, help="response tokens (T)")
    parser.add_argument("--vocab", type=int, required=True, help="vocabulary size (V)")
    parser.add_argument("--chunk-mib", type=int, default=None,
                        help="fp32 logits per chunk (default: trainer.logprob_chunk_mib's default)")
    parser.add_argument("--baseline", action="store_true", help="the full-logits path (one chunk)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    cmd = [sys.executable, os.path.abspath(__file__), "--child"] + [a for a in sys.argv[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_memory: the measuring process failed (exit {done.returncode}; killed for memory if "
                 f"-9):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"T={result['tokens']} V={result['vocab']} path={result['path']} chunk={result['chunk_tokens']} "
          f"tokens: peak_gib={result['peak_gib']:.3f} (model+optimizer {result['model_state_gib']:.3f} GiB, "
          f"full fp32 logits would be {result['full_logits_gib']:.2f} GiB) in {result['seconds']:.1f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def chunk_mib_default() -> int:
    from rlvr.config import TrainerConfig

    return TrainerConfig.logprob_chunk_mib


def build(vocab: int, tokens: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=tokens + PROMPT_TOKENS, attn_implementation="sdpa")
    model = Qwen2ForCausalLM(config).float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():  # allocate AdamW's state now: it is model state, not the step's
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer


def one_batch(vocab: int, tokens: int):
    import torch

    from rlvr.batch import build_batch

    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, vocab, (PROMPT_TOKENS,), generator=g).tolist()
    response = torch.randint(0, vocab, (tokens,), generator=g).tolist()
    mb = build_batch([prompt], [response], [[-1.0] * tokens], [0], pad_id=0)
    mb.advantages = torch.ones(1)
    mb.old_logprobs = torch.full((1, tokens), -1.0)
    return mb


def measure(args) -> dict:
    import torch

    from rlvr.algorithms import compute_policy_loss
    from rlvr.trainer.logprobs import FP32_BYTES, MIB, sequence_logprobs

    torch.set_num_threads(args.threads)
    total = args.tokens + PROMPT_TOKENS
    full_mib = -(-total * args.vocab * FP32_BYTES // MIB)
    chunk_mib = full_mib if args.baseline else (args.chunk_mib or chunk_mib_default())
    model, optimizer = build(args.vocab, args.tokens)
    mb = one_batch(args.vocab, args.tokens)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * page
    start = time.perf_counter()
    logp, entropy = sequence_logprobs(model, model, mb, 1.0, device="cpu", with_entropy=True, chunk_mib=chunk_mib)
    loss, _ = compute_policy_loss("grpo", logprobs=logp, old_logprobs=mb.old_logprobs,
                                  rollout_logprobs=mb.rollout_logprobs, advantages=mb.advantages,
                                  mask=mb.response_mask, num_tokens=mb.num_tokens, num_seqs=1)
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    state = sum(p.numel() * p.element_size() for p in model.parameters()) * 3  # weights + AdamW's two moments
    return {"tokens": args.tokens, "vocab": args.vocab, "path": "full-logits" if args.baseline else "chunked",
            "chunk_mib": chunk_mib, "chunk_tokens": min(total, max(1, chunk_mib * MIB // (args.vocab * FP32_BYTES))),
            "peak_gib": (peak - before) / GIB, "model_state_gib": state / GIB,
            "full_logits_gib": total * args.vocab * FP32_BYTES / GIB,
            "entropy_mean": float(entropy.sum() / args.tokens),
            "loss": float(loss), "seconds": seconds, "threads": args.threads}


if __name__ == "__main__":
    main()

"""Memory-bounded log-probs and entropy of the response tokens, with an exact gradient.

A micro-batch's logits are ``rows x length x vocab``: for one 20k-token response and a 152k vocabulary
that is 12 GB in fp32, and the log-softmax, its gradient and the entropy each add a copy. So:

- When the micro-batch's fp32 logits fit in ``chunk_mib`` (the small jobs, the default one included),
  nothing changes: the model returns its logits and `rlvr.batch.response_logprobs` reads them, bit for bit
  what the trainer always computed.
- Otherwise the model's output head is swapped, for the duration of one forward, for one that takes the
  final hidden states and returns the response tokens' log-probs directly (`ChunkedLogprobs`): the
  response tokens are processed in chunks of ``chunk_mib`` of fp32 logits, each chunk's logits are freed
  after use and recomputed in backward. Peak memory is about two chunks of logits, whatever T is.

The head is swapped rather than bypassed so that the call still goes through the model (and DeepSpeed's
engine): the engine's backward hooks sit on the model's output, which is then the log-prob tensor itself,
and ZeRO-3 gathers the head's weight for its forward and backward as for any module.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from rlvr.batch import Batch, response_logprobs

MIB = 2**20
FP32_BYTES = 4


class ChunkedLogprobs(torch.autograd.Function):
    """log softmax(h W^T + b) / temperature at each row's target, and the entropy of that distribution,
    for the rows of ``hidden`` [M, H], ``chunk`` rows at a time. Only ``hidden``, the weights and each
    row's log-normaliser are kept for backward, which recomputes a chunk's logits and applies the exact
    gradient of the log-softmax: d logp_i / d z = onehot(target_i) - softmax(z_i)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature: float, chunk: int, with_entropy: bool):
        logp = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logp)
        entropy = torch.zeros_like(logp)
        for lo in range(0, hidden.shape[0], chunk):
            hi = min(lo + chunk, hidden.shape[0])
            z = _chunk_logits(hidden[lo:hi], weight, bias, temperature)
            lse[lo:hi] = torch.logsumexp(z, dim=-1)
            logp_all = torch.log_softmax(z, dim=-1)
            logp[lo:hi] = logp_all.gather(1, targets[lo:hi, None]).squeeze(1)
            if with_entropy:  # -sum p log p, as response_logprobs sums it, written over z (no third copy)
                entropy[lo:hi] = -torch.exp(logp_all, out=z).mul_(logp_all).sum(-1)
            del z, logp_all
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_bias = None if bias is None else torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
        rows = torch.arange(min(ctx.chunk, hidden.shape[0]), device=hidden.device)
        for lo in range(0, hidden.shape[0], ctx.chunk):
            hi = min(lo + ctx.chunk, hidden.shape[0])
            g = grad_logp[lo:hi].float()
            dz = _chunk_logits(hidden[lo:hi], weight, bias, ctx.temperature)
            dz.sub_(lse[lo:hi, None]).exp_()                            # softmax(z), then renormalised:
            dz.mul_((-g / dz.sum(-1))[:, None])                         # -g * softmax(z)
            dz[rows[: hi - lo], targets[lo:hi]] += g                    # + g * onehot(target)
            if ctx.temperature > 0:
                dz.div_(ctx.temperature)                                # z = logits / temperature
            dz = dz.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[lo:hi] = dz @ weight
            if weight.dtype == torch.float32:                           # summed over chunks in fp32
                grad_weight.addmm_(dz.t(), hidden[lo:hi])
            else:
                grad_weight.add_((dz.t() @ hidden[lo:hi]).float())
            if grad_bias is not None:
                grad_bias.add_(dz.float().sum(0))
            del dz
        grad_bias = grad_bias.to(bias.dtype) if grad_bias is not None else None
        return grad_hidden, grad_weight.to(weight.dtype), grad_bias, None, None, None, None


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, bias, temperature: float) -> torch.Tensor:
    """fp32 logits of a chunk at the temperature, as `response_logprobs` makes them (cast, then divide)."""
    z = torch.nn.functional.linear(hidden, weight, bias).float()
    if temperature > 0:
        z = z / temperature
    return z


def sequence_logprobs(model, network, mb: Batch, temperature: float, *, device, with_entropy: bool = False,
                      chunk_mib: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The response tokens' log-probs [N, T] (and entropies, no gradient) of micro-batch ``mb``.

    ``model`` is what is called (a DeepSpeed engine or the HF model), ``network`` the HF causal LM inside
    it (whose output head is swapped for long micro-batches); ``chunk_mib`` bounds the fp32 logits held
    at once (see the module docstring; None: no bound, the full logits always)."""
    input_ids, attention_mask = mb.input_ids.to(device), mb.attention_mask.to(device)
    head = network.get_output_embeddings()
    vocab = head.out_features
    if chunk_mib is None or input_ids.numel() * vocab * FP32_BYTES <= chunk_mib * MIB:  # today's, unchanged
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return response_logprobs(logits, mb, temperature, with_entropy=with_entropy)
    _refuse_postprocessed_logits(network)
    chunk = max(1, chunk_mib * MIB // (vocab * FP32_BYTES))
    found = {}

    def head_forward(hidden: torch.Tensor) -> torch.Tensor:
        logp, found["entropy"] = _response_logprobs_from_hidden(hidden, head, mb, temperature, chunk, with_entropy)
        return logp

    with _swapped_forward(head, head_forward):
        logp = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return logp, found["entropy"]


def _response_logprobs_from_hidden(hidden: torch.Tensor, head, mb: Batch, temperature: float, chunk: int,
                                   with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`response_logprobs` from the final hidden states [N, L, H]: the same positions and targets (the
    hidden state at position p predicts token p + 1), computed for the real response tokens only."""
    n, t = mb.response_mask.shape
    dev = hidden.device
    pos = (mb.prompt_lens[:, None] - 1 + torch.arange(t)[None, :]).clamp(max=hidden.shape[1] - 1).to(dev)
    targets = torch.gather(mb.input_ids.to(dev), 1, (pos + 1).clamp(max=mb.input_ids.shape[1] - 1))
    real = mb.response_mask.to(dev) > 0
    picked = hidden[torch.arange(n, device=dev)[:, None], pos][real]          # [M, H]
    logp_real, entropy_real = ChunkedLogprobs.apply(picked, head.weight, head.bias, targets[real], temperature,
                                                    chunk, with_entropy)
    logp = torch.zeros((n, t), dtype=torch.float32, device=dev).masked_scatter(real, logp_real)
    entropy = torch.zeros((n, t), dtype=torch.float32, device=dev).masked_scatter(real, entropy_real)
    return logp, (entropy if with_entropy else None)


@contextmanager
def _swapped_forward(module: torch.nn.Module, forward):
    """``module.forward`` replaced for the block (its hooks, e.g. ZeRO-3's parameter gathering, still run);
    then whatever forward it had again (the class's, or an instance one such as accelerate's wrapper)."""
    before = module.__dict__.get("forward")
    module.forward = forward
    try:
        yield
    finally:
        if before is None:
            del module.forward
        else:
            module.forward = before


def _refuse_postprocessed_logits(network) -> None:
    """Models that transform the head's output (soft-capping, scaling) would transform the log-probs too."""
    config = network.config
    for key in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"):
        if getattr(config, key, None) not in (None, 1, 1.0):
            raise ValueError(f"{type(network).__name__} applies {key}={getattr(config, key)} after its output "
                             f"head, which the chunked log-prob path cannot follow; raise "
                             f"trainer.logprob_chunk_mib above this micro-batch's logits to use the full path")

"""`rlvr.trainer.logprobs.sequence_logprobs` against today's full-logits computation
(`model(...).logits` then `rlvr.batch.response_logprobs`) on a tiny random Qwen2:

- when the micro-batch's logits fit in one chunk it IS today's computation: log-probs, entropies and
  every parameter's gradient are bit-identical (torch.equal);
- in chunks they agree to 1e-6 in fp32 (1e-5 with one token per chunk), gradients included, with tied
  embeddings, an output head with a bias, and at temperatures 0, 0.7 and 1;
- a model that transforms its head's output (logit soft-capping) is refused with one clear line.
"""

from __future__ import annotations

import pytest
import torch

from rlvr.batch import build_batch, response_logprobs
from rlvr.trainer.logprobs import FP32_BYTES, MIB, sequence_logprobs

VOCAB = 4096     # 1 MiB of fp32 logits = 64 tokens: several chunks on the batch below
ATOL = 1e-6


def tiny_model(tied: bool = False, bias: bool = False, seed: int = 0, **extra):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=tied, **extra)
    model = Qwen2ForCausalLM(config).float()
    if bias:
        head = torch.nn.Linear(16, VOCAB, bias=True)
        torch.nn.init.normal_(head.bias, std=0.5)
        model.lm_head = head
    return model


def tiny_batch(seed: int = 1):
    """Rows with prompts of different lengths, responses of 50, 1, 0 and 90 tokens (right-padded)."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (3, 6, 2, 4)]
    responses = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (50, 1, 0, 90)]
    return build_batch(prompts, responses, [[0.0] * len(r) for r in responses], [0, 1, 2, 3], pad_id=0)


def legacy(model, mb, temperature):
    logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits
    return response_logprobs(logits, mb, temperature, with_entropy=True)


def run(model, mb, temperature, chunk_mib=None):
    """(log-probs, entropies, gradients of a weighted sum of the log-probs)."""
    model.zero_grad(set_to_none=True)
    if chunk_mib is None:
        logp, entropy = legacy(model, mb, temperature)
    else:
        logp, entropy = sequence_logprobs(model, model, mb, temperature, device="cpu", with_entropy=True,
                                          chunk_mib=chunk_mib)
    weights = torch.linspace(-1.0, 2.0, logp.numel()).view_as(logp)
    (logp * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logp.detach(), entropy, grads


def logits_mib(mb) -> float:
    return mb.input_ids.numel() * VOCAB * FP32_BYTES / MIB


def test_one_chunk_is_bit_identical_to_full_logits():
    model, mb = tiny_model(), tiny_batch()
    assert logits_mib(mb) < 64
    ref_logp, ref_ent, ref_grads = run(model, mb, 0.7)
    logp, ent, grads = run(model, mb, 0.7, chunk_mib=64)
    assert torch.equal(logp, ref_logp) and torch.equal(ent, ref_ent)
    assert grads.keys() == ref_grads.keys() and len(grads) > 0
    for name in grads:
        assert torch.equal(grads[name], ref_grads[name]), name


# (chunk_mib, tolerance): 64-token chunks to 1e-6; one-token chunks to 1e-5, because a single row's
# product with the head takes BLAS's vector path, another fp32 summation order over the vocabulary
CHUNKINGS = [(1, ATOL), (0, 10 * ATOL)]


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
@pytest.mark.parametrize("chunk_mib,tol", CHUNKINGS)
@pytest.mark.parametrize("tied,bias", [(False, False), (True, False), (False, True)])
def test_chunks_match_full_logits(temperature, chunk_mib, tol, tied, bias):
    """Log-probs and entropies to `tol` (absolute), each parameter's gradient to `tol` times its largest
    entry (gradients here range over four orders of magnitude), at least 1e-3 of the largest overall."""
    model, mb = tiny_model(tied=tied, bias=bias), tiny_batch()
    assert logits_mib(mb) > 1 and mb.num_tokens > 64  # more than one chunk
    ref_logp, ref_ent, ref_grads = run(model, mb, temperature)
    logp, ent, grads = run(model, mb, temperature, chunk_mib=chunk_mib)
    mask = mb.response_mask
    assert torch.equal(logp == 0, ref_logp == 0) and torch.equal(ent * (1 - mask), torch.zeros_like(ent))
    torch.testing.assert_close(logp, ref_logp, rtol=0, atol=tol)
    torch.testing.assert_close(ent, ref_ent, rtol=0, atol=tol)
    assert grads.keys() == ref_grads.keys()
    largest = max(float(g.abs().max()) for g in ref_grads.values())
    for name in grads:  # floored: the key biases' true gradient is 0 (attention is shift-invariant)
        scale = max(float(ref_grads[name].abs().max()), 1e-3 * largest)
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=0, atol=tol * scale, msg=name)


def test_chunks_without_gradient_match():
    """pi_old and pi_ref are computed under no_grad: same values, nothing kept."""
    model, mb = tiny_model(), tiny_batch()
    with torch.no_grad():
        ref_logp, _ = legacy(model, mb, 1.0)
        logp, entropy = sequence_logprobs(model, model, mb, 1.0, device="cpu", chunk_mib=1)
    assert entropy is None and not logp.requires_grad
    torch.testing.assert_close(logp, ref_logp, rtol=0, atol=ATOL)


def test_head_is_restored_after_the_forward():
    model, mb = tiny_model(), tiny_batch()
    sequence_logprobs(model, model, mb, 1.0, device="cpu", chunk_mib=1)
    out = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits
    assert out.shape == (*mb.input_ids.shape, VOCAB)


def test_postprocessed_logits_are_refused():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=8, final_logit_softcapping=30.0)
    model, mb = Gemma2ForCausalLM(config), tiny_batch()
    with pytest.raises(ValueError, match="final_logit_softcapping=30.0 .*trainer.logprob_chunk_mib"):
        sequence_logprobs(model, model, mb, 1.0, device="cpu", chunk_mib=1)


def test_bf16_chunks_follow_the_full_logits():
    """bf16 weights (what the recipes train in): the chunk's logits are the same bf16 products cast to fp32,
    so log-probs agree to bf16 rounding of the logits and gradients to bf16 rounding of the products."""
    model, mb = tiny_model().to(torch.bfloat16), tiny_batch()
    ref_logp, ref_ent, ref_grads = run(model, mb, 1.0)
    logp, ent, grads = run(model, mb, 1.0, chunk_mib=1)
    torch.testing.assert_close(logp, ref_logp, rtol=0, atol=0.02)
    torch.testing.assert_close(ent, ref_ent, rtol=0, atol=0.02)
    for name in grads:
        assert grads[name].dtype == torch.bfloat16, name
        scale = float(ref_grads[name].float().abs().max())
        torch.testing.assert_close(grads[name].float(), ref_grads[name].float(), rtol=0, atol=0.05 * scale, msg=name)

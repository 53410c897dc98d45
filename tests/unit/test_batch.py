"""The batch layout and the trainer's log-prob gathering, against a direct computation."""

from __future__ import annotations

import torch

from rlvr.batch import build_batch, response_logprobs


def _batch():
    prompts = [[5, 6, 7], [8, 9]]
    responses = [[10, 11], [12], [13, 14, 15], []]
    mu = [[-0.1, -0.2], [-0.3], [-0.4, -0.5, -0.6], []]
    return build_batch(prompts, responses, mu, [0, 0, 1, 1], pad_id=0)


def test_build_batch_layout():
    b = _batch()
    assert b.input_ids.tolist()[0] == [5, 6, 7, 10, 11]
    assert b.input_ids.tolist()[1] == [5, 6, 7, 12, 0]
    assert b.prompt_lens.tolist() == [3, 3, 2, 2]
    assert b.response_mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert b.num_tokens == 6 and b.num_seqs == 3
    assert torch.allclose(b.rollout_logprobs[2], torch.tensor([-0.4, -0.5, -0.6]))


def test_select_trims_and_chunks_cover_all_rows():
    b = _batch()
    first = b.select(slice(0, 2))
    assert first.input_ids.shape == (2, 5) and first.response_mask.shape == (2, 2)
    parts = b.chunks(3)
    assert sum(len(p) for p in parts) == len(b)
    assert [len(m) for m in b.micro_batches(3)] == [3, 1]


def test_response_logprobs_match_a_direct_loop():
    torch.manual_seed(0)
    b = _batch()
    logits = torch.randn(len(b), b.input_ids.shape[1], 20)
    got, entropy = response_logprobs(logits, b, temperature=0.7, with_entropy=True)
    for i in range(len(b)):
        p = int(b.prompt_lens[i])
        for j in range(int(b.response_mask[i].sum())):
            dist = torch.log_softmax(logits[i, p + j - 1] / 0.7, -1)
            assert torch.isclose(got[i, j], dist[b.input_ids[i, p + j]], atol=1e-6)
            assert torch.isclose(entropy[i, j], -(dist.exp() * dist).sum(), atol=1e-5)
    assert (got * (1 - b.response_mask)).abs().max() == 0


def test_token_budget_micro_batches_cover_rows_once_within_budget_and_pad_less():
    from rlvr.batch import build_batch

    g = torch.Generator().manual_seed(0)
    resp_lens = [30, 2, 25, 3, 1, 28, 4, 2, 27, 3]
    prompts = [[5] * 4 for _ in resp_lens]
    responses = [torch.randint(4, 90, (n,), generator=g).tolist() for n in resp_lens]
    batch = build_batch(prompts, responses, [[-1.0] * n for n in resp_lens], list(range(len(resp_lens))), 0)
    budget = 70
    pieces = batch.micro_batches(4, token_budget=budget)
    rows = sorted(r for p in pieces for r in p.rows.tolist())
    assert rows == list(range(len(resp_lens)))
    for p in pieces:
        assert len(p) == 1 or p.attention_mask.numel() <= budget
        # each piece's rows are the batch's rows, trimmed to the piece's width
        for i, r in enumerate(p.rows.tolist()):
            n = int(batch.attention_mask[r].sum())
            assert p.input_ids[i, :n].tolist() == batch.input_ids[r, :n].tolist()

    def padding(ps):
        real = sum(p.padded_slots[0] for p in ps)
        return 1 - real / sum(p.padded_slots[1] for p in ps)

    fixed = batch.micro_batches(4)
    assert [p.rows.tolist() for p in fixed] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert padding(pieces) < padding(fixed) / 2

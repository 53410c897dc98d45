"""The training batch: prompt + response token ids, masks, and per-token log-prob tensors.

Sequences are right-padded, so every real token keeps position = its index (what vLLM used too).
Per-token tensors ([N, T]) are aligned to the response: column j is response token j.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Batch:
    input_ids: torch.Tensor          # [N, L] long, prompt then response, right-padded
    attention_mask: torch.Tensor     # [N, L] long
    prompt_lens: torch.Tensor        # [N] long
    response_mask: torch.Tensor      # [N, T] float: 1 on response tokens
    rollout_logprobs: torch.Tensor   # [N, T] float: mu, the sampler's log-probs
    group_index: torch.Tensor        # [N] long: which prompt the sample answers
    advantages: torch.Tensor | None = None     # [N] or [N, T]
    old_logprobs: torch.Tensor | None = None   # [N, T]: pi_old, recomputed by the trainer
    ref_logprobs: torch.Tensor | None = None   # [N, T]
    values: torch.Tensor | None = None         # [N, T]: the critic's V before each response token (PPO)
    returns: torch.Tensor | None = None        # [N, T]: GAE's value targets (PPO)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index) -> "Batch":
        """Rows `index` (a slice or index tensor), with columns trimmed to what those rows use."""
        picked = {f.name: (v[index] if (v := getattr(self, f.name)) is not None else None) for f in fields(self)}
        rows = replace(self, **picked)
        if len(rows) == 0:
            return rows
        resp_len = int(rows.response_mask.sum(1).max().item())
        seq_len = int(rows.attention_mask.sum(1).max().item())
        return rows._trim(max(seq_len, 1), max(resp_len, 1))

    def _trim(self, seq_len: int, resp_len: int) -> "Batch":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or v.dim() < 2:
                out[f.name] = v
            elif f.name in ("input_ids", "attention_mask"):
                out[f.name] = v[:, :seq_len]
            else:
                out[f.name] = v[:, :resp_len]
        return replace(self, **out)

    def chunks(self, parts: int) -> list["Batch"]:
        """`parts` contiguous pieces of near-equal size (some may be empty)."""
        bounds = torch.linspace(0, len(self), parts + 1).round().long().tolist()
        return [self.select(slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def micro_batches(self, size: int, token_budget: int = 0) -> list["Batch"]:
        """Pieces of at most `size` rows; with a `token_budget`, rows sorted by length and packed so
        that each piece's padded size (rows x its longest row) stays within the budget (a row longer
        than the budget goes alone). Pieces keep `.rows`: their row indices in this batch."""
        if not token_budget:
            pieces = [torch.arange(i, min(i + size, len(self))) for i in range(0, len(self), size)]
        else:
            lengths = self.attention_mask.sum(1)
            order = torch.argsort(lengths, descending=True, stable=True).tolist()
            pieces, current, longest = [], [], 0
            for i in order:
                longest_if = max(longest, int(lengths[i]))
                if current and longest_if * (len(current) + 1) > token_budget:
                    pieces.append(torch.tensor(current))
                    current, longest_if = [], int(lengths[i])
                current.append(i)
                longest = longest_if
            if current:
                pieces.append(torch.tensor(current))
        out = []
        for rows in pieces:
            mb = self.select(rows)
            mb.rows = rows
            out.append(mb)
        return out

    @property
    def padded_slots(self) -> tuple[int, int]:
        """(real tokens, rows x width): what a forward pass over this batch computes on."""
        return int(self.attention_mask.sum()), self.attention_mask.numel()

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask.sum().item())

    @property
    def num_seqs(self) -> int:
        return int((self.response_mask.sum(1) > 0).sum().item())


def build_batch(prompts: list[list[int]], responses: list[list[int]], rollout_logprobs: list[list[float]],
                group_index: list[int], pad_id: int) -> Batch:
    n = len(responses)
    seq_len = max(len(prompts[g]) + len(r) for g, r in zip(group_index, responses))
    resp_len = max(1, max(len(r) for r in responses))
    input_ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    attention = torch.zeros((n, seq_len), dtype=torch.long)
    mask = torch.zeros((n, resp_len))
    mu = torch.zeros((n, resp_len))
    for i, (g, resp, lps) in enumerate(zip(group_index, responses, rollout_logprobs)):
        ids = list(prompts[g]) + list(resp)
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, : len(ids)] = 1
        mask[i, : len(resp)] = 1.0
        mu[i, : len(resp)] = torch.tensor(lps, dtype=torch.float32)
    return Batch(
        input_ids=input_ids, attention_mask=attention,
        prompt_lens=torch.tensor([len(prompts[g]) for g in group_index], dtype=torch.long),
        response_mask=mask, rollout_logprobs=mu, group_index=torch.tensor(group_index, dtype=torch.long),
    )


def response_logprobs(logits: torch.Tensor, batch: Batch, temperature: float,
                      with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of the response tokens under `logits` [N, L, V] at the rollout temperature, [N, T].

    The logit at position p predicts token p + 1, so response token j of row i (at position
    prompt_len_i + j) is read from position prompt_len_i + j - 1. Only those positions are
    normalised, which keeps the [N, T, V] softmax small for large vocabularies.
    """
    n, t = batch.response_mask.shape
    pos = (batch.prompt_lens[:, None] - 1 + torch.arange(t)[None, :]).clamp(max=logits.shape[1] - 1)
    pos = pos.to(logits.device)
    picked = torch.gather(logits, 1, pos[..., None].expand(n, t, logits.shape[-1])).float()
    if temperature > 0:
        picked = picked / temperature
    logp_all = torch.log_softmax(picked, dim=-1)
    targets = torch.gather(batch.input_ids.to(logits.device), 1, (pos + 1).clamp(max=batch.input_ids.shape[1] - 1))
    logp = torch.gather(logp_all, 2, targets[..., None]).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    mask = batch.response_mask.to(logits.device)
    return logp * mask, (entropy * mask if entropy is not None else None)

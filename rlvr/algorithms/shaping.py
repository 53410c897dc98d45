"""Reward shaping and filters of DAPO (arXiv 2503.14476; ALGORITHMS.md section 4 ``dapo``).

- ``dynamic_sampling_keep``: keep only samples whose group is *not* all-equal on correctness (those
  groups have zero advantage). The orchestrator keeps generating, up to ``max_gen_batches`` batches,
  until it has enough kept groups. Filter on correctness, never on the shaped reward.
- ``overlong_penalty``: soft overlong punishment R_len(L) = 0 if L <= L_max - L_cache;
  ((L_max - L_cache) - L) / L_cache if L_max - L_cache < L <= L_max; -1 beyond. Added to the reward.
- ``correctness_reward``: 1/0 (``correctness``) or +1/-1 (``plus_minus``, DAPO) from correctness.
"""

from __future__ import annotations

import torch

from .diagnostics import as_correct, group_all_equal

REWARD_KINDS = ("correctness", "plus_minus")


def dynamic_sampling_keep(correct: torch.Tensor, group_index: torch.Tensor) -> torch.Tensor:
    """Bool ``[N]``: True for samples whose group has both correct and wrong answers."""
    c = as_correct(correct)
    gi = torch.as_tensor(group_index, device=c.device)
    if c.dim() != 1 or gi.shape != c.shape:
        raise ValueError(f"correct and group_index must both be [N], got {tuple(c.shape)}, {tuple(gi.shape)}")
    if c.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=c.device)
    return ~group_all_equal(c, gi)


def overlong_cache_tokens(cache_len: int | None, cache_frac: float, max_tokens: int) -> int:
    """DAPO's overlong cache in tokens: `cache_len`, or `cache_frac` of the max response length."""
    if cache_len is not None:
        return int(cache_len)
    return max(1, round(float(cache_frac) * max_tokens))


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO soft overlong punishment per response (float ``[N]``, in [-1, 0])."""
    if max_len <= 0:
        raise ValueError(f"overlong_penalty: max_len must be > 0, got {max_len}")
    if not 0 <= cache_len <= max_len:
        raise ValueError(f"overlong_penalty: need 0 <= cache_len <= max_len, got cache_len={cache_len}, "
                         f"max_len={max_len} (scale cache_len with the max response length)")
    L = torch.as_tensor(lengths).to(torch.float32)
    start = float(max_len - cache_len)
    if cache_len == 0:
        soft = torch.zeros_like(L)
    else:
        soft = (start - L) / float(cache_len)
    out = torch.where(L <= start, torch.zeros_like(L), soft)
    return torch.where(L > max_len, torch.full_like(L, -1.0), out)


def correctness_reward(correct: torch.Tensor, kind: str = "correctness") -> torch.Tensor:
    """Float rewards from correctness: 1/0 (``correctness``) or +1/-1 (``plus_minus``)."""
    if kind not in REWARD_KINDS:
        raise ValueError(f"unknown reward kind {kind!r}; valid: {list(REWARD_KINDS)}")
    c = as_correct(correct).to(torch.float32)
    return c if kind == "correctness" else 2.0 * c - 1.0

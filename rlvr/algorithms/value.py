"""The critic's loss for PPO with GAE (`advantage: gae`): clipped value regression.

Schulman et al., "Proximal Policy Optimization Algorithms", arXiv 1707.06347, with the value clipping
of OpenAI's baselines (ppo2): V_clip = V_old + clamp(V - V_old, -eps, eps) and
l_t = 1/2 max((V - R)^2, (V_clip - R)^2), where R are GAE's returns (A + V_old). The clip keeps one
batch from moving the critic far from the values the advantages were computed with. Aggregated
`token-mean` over the global token count, like the policy loss (section 2), so it is invariant to how
the mini-batch is split across ranks and micro-batches.
"""

from __future__ import annotations

import torch

from .aggregation import aggregate_loss, masked_mean

VALUE_DEFAULTS = {"clip_eps": 0.2}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *,
               clip_eps: float | None = 0.2, num_tokens=None) -> tuple[torch.Tensor, dict]:
    """values: the critic's predictions [N, T] (with grad); old_values: its predictions when the batch
    was scored; returns: GAE's targets. `clip_eps=None` or 0 disables clipping."""
    old_values, returns = old_values.detach(), returns.detach()
    unclipped = (values - returns) ** 2
    if clip_eps:
        clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        clipped = (clipped_values - returns) ** 2
        per_token = 0.5 * torch.maximum(unclipped, clipped)
        clip_frac = masked_mean((clipped > unclipped).float(), mask)
    else:
        per_token = 0.5 * unclipped
        clip_frac = torch.zeros(())
    loss = aggregate_loss(per_token, mask, "token-mean", num_tokens=num_tokens)
    with torch.no_grad():
        residual = masked_mean((returns - values) ** 2, mask)
        spread = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
        explained = 1.0 - residual / spread.clamp(min=1e-8)
    return loss, {"value_loss": loss.detach(), "value_clip_frac": clip_frac,
                  "value_mean": masked_mean(values.detach(), mask), "value_explained_var": explained}

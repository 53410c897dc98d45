"""Advantage estimators (ALGORITHMS.md section 3).

``compute_advantages(name, rewards, group_index, *, mask=None, old_logprobs=None, ref_logprobs=None,
**params)``: ``rewards`` float ``[N]`` (one scalar per response), ``group_index`` long ``[N]`` (the
prompt each response belongs to; any ids, not necessarily contiguous). Returns ``[N]`` for per-sequence
estimators and ``[N, T]`` (zero where ``mask`` is 0) for per-token ones (``reinforce_pp``, ``gae``).

Groups whose rewards are all equal (including groups of size 1) get exactly zero advantage under
``grpo`` / ``dr_grpo`` / ``rloo``. KL-in-reward (``kl_coef > 0``) uses the k1 estimator of
KL(pi_old || pi_ref) per token, which needs ``old_logprobs``, ``ref_logprobs`` and ``mask`` ``[N, T]``.
"""

from __future__ import annotations

from typing import Any

import torch

from .aggregation import masked_whiten
from .kl import kl_estimate
from .registry import ADVANTAGES, check_bool, check_number, register_advantage

GRPO_EPS = 1e-6


def compute_advantages(
    name: str,
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    old_logprobs: torch.Tensor | None = None,
    ref_logprobs: torch.Tensor | None = None,
    **params: Any,
) -> torch.Tensor:
    """Advantages from the estimator registered as ``name`` (see module doc)."""
    spec = ADVANTAGES[name]
    resolved = spec.resolve("advantage", params)
    rewards = torch.as_tensor(rewards)
    group_index = torch.as_tensor(group_index, device=rewards.device)
    if rewards.dim() != 1 or group_index.shape != rewards.shape:
        raise ValueError(
            f"advantage '{name}': rewards and group_index must both be [N], got "
            f"{tuple(rewards.shape)} and {tuple(group_index.shape)}"
        )
    if group_index.is_floating_point() or group_index.dtype == torch.bool:
        raise ValueError(f"advantage '{name}': group_index must be an integer tensor")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if mask is not None and (mask.dim() != 2 or mask.shape[0] != rewards.shape[0]):
        raise ValueError(f"advantage '{name}': mask must be [N, T], got {tuple(mask.shape)}")
    out = spec.fn(rewards, group_index, mask=mask, old_logprobs=old_logprobs, ref_logprobs=ref_logprobs,
                  **resolved)
    return out.detach()


# --- helpers ---------------------------------------------------------------------------------------


def group_stats(values: torch.Tensor, group_index: torch.Tensor):
    """Per-element (count, mean, unbiased std, all_equal) of each element's group, in float64."""
    v = values.detach().to(torch.float64)
    _, inv = torch.unique(group_index, return_inverse=True)
    n_groups = int(inv.max().item()) + 1 if inv.numel() else 0
    count = torch.zeros(n_groups, dtype=torch.float64, device=v.device).index_add_(0, inv, torch.ones_like(v))
    total = torch.zeros(n_groups, dtype=torch.float64, device=v.device).index_add_(0, inv, v)
    mean = total / count
    sq = torch.zeros(n_groups, dtype=torch.float64, device=v.device).index_add_(0, inv, (v - mean[inv]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp_min(1.0))
    gmax = torch.full((n_groups,), float("-inf"), dtype=torch.float64, device=v.device)
    gmin = torch.full((n_groups,), float("inf"), dtype=torch.float64, device=v.device)
    gmax = gmax.scatter_reduce(0, inv, v, reduce="amax")
    gmin = gmin.scatter_reduce(0, inv, v, reduce="amin")
    all_equal = gmax == gmin
    return count[inv], mean[inv], std[inv], all_equal[inv]


def _need_logprobs(name, mask, old_logprobs, ref_logprobs):
    if mask is None or old_logprobs is None or ref_logprobs is None:
        raise ValueError(
            f"advantage '{name}': kl_coef > 0 (KL in reward) needs mask, old_logprobs and ref_logprobs [N, T]"
        )


def _token_kl(mask, old_logprobs, ref_logprobs) -> torch.Tensor:
    """k1 estimate of KL(pi_old || pi_ref) per token, zero where masked."""
    m = mask > 0
    kl = kl_estimate(old_logprobs.detach(), ref_logprobs, "k1").to(torch.float64)
    return torch.where(m, kl, torch.zeros_like(kl))


def _out(x: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    return x.to(rewards.dtype)


def _kl_reward_validate(p):
    check_number(p, "kl_coef", ge=0)


# --- per-sequence estimators ----------------------------------------------------------------------


def _grpo_validate(p):
    check_number(p, "eps", gt=0)
    check_bool(p, "norm_by_std")


@register_advantage("grpo", defaults={"eps": GRPO_EPS, "norm_by_std": True}, validate=_grpo_validate,
                    reference="arXiv:2402.03300")
def grpo_advantage(rewards, group_index, *, eps, norm_by_std, **_):
    """GRPO (DeepSeekMath, arXiv 2402.03300): A_i = (R_i - mean_g R) / (std_g R + eps).

    std unbiased (Bessel), eps 1e-6. A group of size 1 or with all-equal rewards gets A = 0.
    ``norm_by_std=False`` gives Dr. GRPO's mean-centred advantage.
    """
    count, mean, std, all_equal = group_stats(rewards, group_index)
    adv = rewards.to(torch.float64) - mean
    if norm_by_std:
        adv = adv / (std + eps)
    adv = torch.where(all_equal | (count < 2), torch.zeros_like(adv), adv)
    return _out(adv, rewards)


@register_advantage("dr_grpo", defaults={}, reference="arXiv:2503.20783")
def dr_grpo_advantage(rewards, group_index, **_):
    """Dr. GRPO (arXiv 2503.20783): A_i = R_i - mean_g R (no std normalisation); 0 for size-1 groups."""
    count, mean, _, all_equal = group_stats(rewards, group_index)
    adv = rewards.to(torch.float64) - mean
    adv = torch.where(all_equal | (count < 2), torch.zeros_like(adv), adv)
    return _out(adv, rewards)


@register_advantage("rloo", defaults={"kl_coef": 0.0}, validate=_kl_reward_validate,
                    reference="arXiv:2402.14740")
def rloo_advantage(rewards, group_index, *, mask=None, old_logprobs=None, ref_logprobs=None, kl_coef, **_):
    """RLOO (Ahmadian et al., arXiv 2402.14740): A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean R).

    With ``kl_coef`` (beta) > 0 the reward is R_i - beta * sum_t k1_t (KL(pi_old || pi_ref) in reward).
    Size-1 groups get 0.
    """
    r = rewards.to(torch.float64)
    if kl_coef > 0:
        _need_logprobs("rloo", mask, old_logprobs, ref_logprobs)
        r = r - kl_coef * _token_kl(mask, old_logprobs, ref_logprobs).sum(-1)
    count, mean, _, all_equal = group_stats(r, group_index)
    adv = count / (count - 1).clamp_min(1.0) * (r - mean)
    adv = torch.where(all_equal | (count < 2), torch.zeros_like(adv), adv)
    return _out(adv, rewards)


# --- per-token estimators -------------------------------------------------------------------------


def last_token_index(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the last masked token per row, whether the row has any)."""
    m = mask > 0
    T = m.shape[-1]
    idx = (T - 1) - torch.flip(m.to(torch.int64), dims=[-1]).argmax(-1)
    return idx, m.any(-1)


def token_rewards(seq_reward, mask, old_logprobs, ref_logprobs, kl_coef, name) -> torch.Tensor:
    """R at the last response token minus kl_coef * k1 per token; float64 [N, T]."""
    m = mask > 0
    tr = torch.zeros(m.shape, dtype=torch.float64, device=mask.device)
    idx, has = last_token_index(mask)
    rows = torch.arange(m.shape[0], device=mask.device)
    tr[rows[has], idx[has]] = seq_reward.to(torch.float64)[has]
    if kl_coef > 0:
        _need_logprobs(name, mask, old_logprobs, ref_logprobs)
        tr = tr - kl_coef * _token_kl(mask, old_logprobs, ref_logprobs)
    return tr


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = sum_{s >= t} gamma^(s-t) r_s, zero where masked."""
    m = (mask > 0).to(token_rewards.dtype)
    r = token_rewards * m
    if gamma == 1.0:
        ret = torch.flip(torch.cumsum(torch.flip(r, [-1]), -1), [-1])
    else:
        ret = torch.zeros_like(r)
        running = torch.zeros_like(r[:, 0])
        for t in range(r.shape[-1] - 1, -1, -1):
            running = r[:, t] + gamma * running
            ret[:, t] = running
    return ret * m


def _rpp_validate(p):
    check_number(p, "kl_coef", ge=0)
    check_number(p, "gamma", gt=0, le=1)


def _rpp(name, rewards, mask, old_logprobs, ref_logprobs, kl_coef, gamma):
    if mask is None:
        raise ValueError(f"advantage '{name}': needs mask [N, T] (per-token advantages)")
    tr = token_rewards(rewards, mask, old_logprobs, ref_logprobs, kl_coef, name)
    ret = discounted_returns(tr, mask, gamma)
    return masked_whiten(ret, mask)


@register_advantage("reinforce_pp", defaults={"kl_coef": 0.0, "gamma": 1.0}, validate=_rpp_validate,
                    reference="arXiv:2501.03262")
def reinforce_pp_advantage(rewards, group_index, *, mask=None, old_logprobs=None, ref_logprobs=None,
                           kl_coef, gamma, **_):
    """REINFORCE++ (arXiv 2501.03262): token rewards = R at the last token - beta * k1(pi_old||pi_ref);
    returns-to-go (gamma 1); whitened over the whole batch (masked mean/unbiased std). Returns [N, T]."""
    return _out(_rpp("reinforce_pp", rewards, mask, old_logprobs, ref_logprobs, kl_coef, gamma), rewards)


@register_advantage("reinforce_pp_baseline", defaults={"kl_coef": 0.0, "gamma": 1.0},
                    validate=_rpp_validate, reference="arXiv:2501.03262")
def reinforce_pp_baseline_advantage(rewards, group_index, *, mask=None, old_logprobs=None,
                                    ref_logprobs=None, kl_coef, gamma, **_):
    """REINFORCE++-baseline: subtract the group mean of R first, then as ``reinforce_pp``. [N, T]."""
    _, mean, _, _ = group_stats(rewards, group_index)
    centred = rewards.to(torch.float64) - mean
    return _out(_rpp("reinforce_pp_baseline", centred, mask, old_logprobs, ref_logprobs, kl_coef, gamma),
                rewards)


def compute_gae(token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
                lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al., arXiv 1506.02438) for right-padded responses; (advantages, returns).

    delta_t = r_t + gamma V_{t+1} - V_t (V = 0 after the last token); A_t = delta_t + gamma lam A_{t+1};
    returns = A + V (the critic's target). Both zero where masked.
    """
    m = (mask > 0).to(torch.float64)
    v = values.detach().to(torch.float64) * m
    r = token_rewards.to(torch.float64) * m
    T = r.shape[-1]
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[:, 0])
    for t in range(T - 1, -1, -1):
        next_v = v[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = r[:, t] + gamma * next_v - v[:, t]
        last = (delta + gamma * lam * last) * m[:, t]
        adv[:, t] = last
    return adv * m, (adv + v) * m


def _gae_validate(p):
    check_number(p, "kl_coef", ge=0)
    check_number(p, "gamma", gt=0, le=1)
    check_number(p, "lam", ge=0, le=1)
    check_bool(p, "whiten")
    if p["values"] is not None and not isinstance(p["values"], torch.Tensor):
        raise ValueError("param 'values' must be a [N, T] tensor from the critic")


@register_advantage("gae", defaults={"values": None, "gamma": 1.0, "lam": 1.0, "whiten": True,
                                     "kl_coef": 0.0}, validate=_gae_validate, reference="arXiv:1506.02438")
def gae_advantage(rewards, group_index, *, mask=None, old_logprobs=None, ref_logprobs=None, values,
                  gamma, lam, whiten, kl_coef, **_):
    """PPO's GAE with a critic: ``values`` [N, T] (the value model's predictions) is required.

    gamma = lambda = 1.0 by default (RLVR: one terminal reward). Token rewards as in ``reinforce_pp``
    (optional k1 KL in reward); advantages whitened over the batch by default. [N, T].
    """
    if values is None or mask is None:
        raise ValueError("advantage 'gae': needs a critic's values=[N, T] and mask [N, T]; "
                         "without a value model use 'grpo', 'rloo' or 'reinforce_pp'")
    if values.shape != mask.shape:
        raise ValueError(f"advantage 'gae': values {tuple(values.shape)} != mask {tuple(mask.shape)}")
    tr = token_rewards(rewards, mask, old_logprobs, ref_logprobs, kl_coef, "gae")
    adv, _ = compute_gae(tr, values, mask, gamma, lam)
    if whiten:
        adv = masked_whiten(adv, mask)
    return _out(adv, rewards)


def gae_returns(rewards, mask, values, *, old_logprobs=None, ref_logprobs=None, gamma=1.0, lam=1.0, kl_coef=0.0,
                **_) -> torch.Tensor:
    """The critic's regression targets for ``gae``: A + V with GAE's A before whitening, [N, T]."""
    tr = token_rewards(rewards, mask, old_logprobs, ref_logprobs, kl_coef, "gae")
    return compute_gae(tr, values, mask, gamma, lam)[1].to(torch.float32)


# --- preset keys (ALGORITHMS.md section 9) as aliases of their advantage estimator ------------------

PRESET_ADVANTAGE = {
    "pg": "grpo", "ppo": "gae", "dapo": "grpo", "gspo": "grpo", "cispo": "grpo", "dgpo": "grpo",
    "dcmdp": "grpo", "sapo": "grpo", "dppo_tv": "dr_grpo", "dppo_kl": "dr_grpo", "drpo": "dr_grpo",
}
for _alias, _target in PRESET_ADVANTAGE.items():
    _spec = ADVANTAGES[_target]
    register_advantage(_alias, defaults=_spec.defaults, validate=_spec.validate,
                       reference=f"alias of '{_target}'")(_spec.fn)

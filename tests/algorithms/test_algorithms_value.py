"""PPO's clipped value loss: gradients against the closed form, inside and outside the clip range."""

from __future__ import annotations

import torch

from rlvr.algorithms import compute_gae, value_loss


def test_value_loss_gradient_matches_closed_form():
    old = torch.tensor([[0.0, 0.5, 1.0], [0.2, -0.3, 0.0]])
    # moves inside the clip (+-0.2), beyond it in both directions, and a masked token
    values = (old + torch.tensor([[0.1, 0.5, -0.4], [-0.05, 0.3, 0.9]])).requires_grad_()
    returns = torch.tensor([[1.0, 2.0, 2.0], [0.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss, metrics = value_loss(values, old, returns, mask, clip_eps=0.2, num_tokens=5)
    loss.backward()
    v = values.detach()
    clipped_v = old + (v - old).clamp(-0.2, 0.2)
    use_unclipped = (v - returns) ** 2 >= (clipped_v - returns) ** 2
    inside = (v - old).abs() <= 0.2
    # d/dV of 1/2 max(...)/N: (V - R)/N where the unclipped term wins, else (V_clip - R)/N inside the
    # clip range and 0 outside it (the clamp stops the gradient)
    expected = torch.where(use_unclipped, v - returns, torch.where(inside, clipped_v - returns, 0.0)) * mask / 5
    assert torch.allclose(values.grad, expected, atol=1e-7)
    assert values.grad[0, 1] == 0.0  # moved +0.5 towards its return, past the clip: no gradient
    assert 0 < metrics["value_clip_frac"] < 1
    # a zero mask contributes nothing; clip_eps=0 is plain regression
    values.grad = None
    value_loss(values, old, returns, mask, clip_eps=0, num_tokens=5)[0].backward()
    assert torch.allclose(values.grad, (v - returns) * mask / 5)


def test_gae_returns_are_the_value_targets():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.4, 0.7]])
    adv, ret = compute_gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    # gamma = lambda = 1: every return is the terminal reward, advantages are R - V
    assert torch.allclose(ret.float(), torch.ones(1, 3))
    assert torch.allclose(adv.float(), 1.0 - values)

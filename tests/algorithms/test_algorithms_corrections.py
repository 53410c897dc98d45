"""Train-inference mismatch corrections (ALGORITHMS.md section 5) on top of recompute-anchored
objectives, their metrics, and the rejection for rollout-anchored objectives."""

from __future__ import annotations

import math

import pytest
import torch
from alg_helpers import RHO, a_tok, close, make_batch, token_grads

from rlvr.algorithms import compute_correction, compute_policy_loss, resolve_correction


def _ppo_grad(b):
    r, A = b["r"], a_tok(b)
    clipped = ((A > 0) & (r > 1.2)) | ((A < 0) & (r < 0.8))
    return torch.where(clipped, torch.zeros_like(r), -A * r)


def _rho(b):
    return torch.tensor(RHO, dtype=torch.float64).expand_as(b["r"])


@pytest.mark.parametrize("corr,weight", [
    ({"mode": "tis", "clip": 2.0}, lambda rho, m: rho.clamp(max=2.0)),
    ({"mode": "tis"}, lambda rho, m: rho.clamp(max=2.0)),
    ({"mode": "icepop"}, lambda rho, m: torch.where((rho >= 0.5) & (rho <= 5.0), rho, torch.zeros_like(rho))),
    ({"mode": "mis", "low": 0.5, "high": 2.0}, lambda rho, m: ((rho >= 0.5) & (rho <= 2.0)).double()),
])
def test_token_level_weights(corr, weight):
    b = make_batch("recompute")
    g, met, _ = token_grads("ppo", b, correction=corr)
    m = b["mask"]
    w = weight(_rho(b), m)
    assert close(g[m], (w * _ppo_grad(b))[m])
    assert met["correction_masked_frac"] == pytest.approx((w[m] == 0).double().mean().item())
    wm = w[m]
    assert met["correction_ess"] == pytest.approx((wm.sum() ** 2 / (wm.numel() * (wm ** 2).sum())).item())


def test_seq_tis_and_sequence_mis():
    b = make_batch("recompute")
    m = b["mask"]
    logrho = torch.where(m, _rho(b).log(), torch.zeros_like(b["r"]))
    seq = logrho.sum(-1).exp()
    g, met, _ = token_grads("ppo", b, correction={"mode": "seq_tis", "clip": 2.0})
    w = seq.clamp(max=2.0)[:, None].expand_as(b["r"])
    assert close(g[m], (w * _ppo_grad(b))[m])
    geo = (logrho.sum(-1) / m.sum(-1).clamp_min(1)).exp()
    g, met, _ = token_grads("ppo", b, correction={"mode": "mis", "low": 0.9, "high": 1.5, "level": "sequence"})
    keep = ((geo >= 0.9) & (geo <= 1.5))[:, None].expand_as(b["r"])
    assert close(g[m], (keep * _ppo_grad(b))[m])
    assert 0 < met["correction_masked_frac"] < 1


def test_metrics_always_present_and_correct():
    b = make_batch("recompute")
    _, met, _ = token_grads("grpo", b)
    m = b["mask"]
    pi_old, mu = b["old"].exp(), b["mu"].exp()
    assert met["mismatch_abs_diff"] == pytest.approx((pi_old - mu).abs()[m].mean().item(), rel=1e-9)
    x = (b["old"] - b["mu"])[m]
    assert met["mismatch_kl"] == pytest.approx((x.exp() - x - 1).mean().item(), rel=1e-9)
    assert met["correction_masked_frac"] == 0.0 and met["correction_ess"] == 1.0
    # rollout-anchored objectives also log the mismatch
    _, met = compute_policy_loss("drpo", logprobs=b["lp"], old_logprobs=b["old"], rollout_logprobs=b["mu"],
                                 advantages=b["adv"], mask=b["mask"])
    assert met["mismatch_abs_diff"] > 0


def test_weights_detached_and_zero_when_masked():
    b = make_batch("recompute")
    old = b["old"].clone().requires_grad_(True)
    w, met = compute_correction(old, b["mu"], b["mask"], {"mode": "tis"})
    assert not w.requires_grad
    assert (w[~b["mask"]] == 0).all()
    assert all(math.isfinite(v.item()) for v in met.values())


def test_rollout_anchored_objectives_reject_corrections():
    b = make_batch("rollout")
    for name in ("pg", "rloo", "dppo_tv", "drpo"):
        with pytest.raises(ValueError, match="rollout"):
            token_grads(name, b, correction={"mode": "tis"})
        token_grads(name, b, correction={"mode": "none"})  # fine


def test_resolve_correction_validation():
    assert resolve_correction(None) == {"mode": "none"}
    assert resolve_correction("tis") == {"mode": "tis", "clip": 2.0}
    assert resolve_correction({"mode": "mis"})["level"] == "token"
    for bad in ({"mode": "foo"}, {"mode": "tis", "clip": -1}, {"mode": "tis", "low": 0.5},
                {"mode": "mis", "low": 2.0, "high": 1.0}, {"mode": "mis", "level": "batch"}, 3):
        with pytest.raises(ValueError):
            resolve_correction(bad)
    with pytest.raises(ValueError, match="valid modes"):
        resolve_correction({"mode": "foo"})


def test_step0_pi_old_equals_mu_gives_neutral_metrics():
    """Pitfall 1: at step 0 pi_old == mu (up to noise): rho = 1, every correction is a no-op."""
    torch.manual_seed(0)
    old = -torch.rand(3, 5, dtype=torch.float64) * 3
    mu = old + 1e-7 * torch.randn(3, 5, dtype=torch.float64)
    for mode in ("tis", "seq_tis", "mis", "icepop"):
        _, met = compute_policy_loss("ppo", logprobs=old, old_logprobs=old, rollout_logprobs=mu,
                                     advantages=torch.ones(3, dtype=torch.float64), mask=torch.ones(3, 5),
                                     correction={"mode": mode})
        assert met["mismatch_abs_diff"] < 1e-6 and met["mismatch_kl"] < 1e-12
        assert met["correction_masked_frac"] == 0 and met["correction_ess"] == pytest.approx(1.0)


def test_none_params_take_the_modes_defaults():
    """The typed config block carries every param, None when unset: those take the chosen mode's defaults."""
    unset = {"clip": None, "low": None, "high": None, "level": None}
    assert resolve_correction({"mode": "tis", **unset}) == {"mode": "tis", "clip": 2.0}
    assert resolve_correction({"mode": "mis", **unset, "level": "sequence"}) == {
        "mode": "mis", "low": 0.5, "high": 2.0, "level": "sequence"}
    assert resolve_correction({"mode": "none", **unset}) == {"mode": "none"}
    with pytest.raises(ValueError, match="unknown param"):
        resolve_correction({"mode": "tis", "low": 0.5})

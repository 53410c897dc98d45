"""Registry behaviour: keys, params validation, defaults, plugins (ALGORITHMS.md sections 1 and 9)."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from rlvr.algorithms import (
    ADVANTAGES,
    OBJECTIVES,
    compute_advantages,
    compute_policy_loss,
    needs_reference,
    objective_info,
    register_advantage,
    register_objective,
)
from rlvr.plugins import import_plugins

TABLE = ["pg", "ppo", "grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp", "dppo_tv",
         "dppo_kl", "drpo", "dgpo", "dcmdp"]


def _kw(B=2, T=3):
    lp = -torch.rand(B, T) - 0.1
    return {"logprobs": lp, "old_logprobs": lp, "rollout_logprobs": lp, "advantages": torch.ones(B),
            "mask": torch.ones(B, T)}


def test_every_table_key_registered_with_its_agg_and_anchor():
    expected = {
        "pg": ("seq-mean-token-sum", "rollout"), "ppo": ("token-mean", "recompute"),
        "grpo": ("seq-mean-token-mean", "recompute"), "dr_grpo": ("seq-mean-token-sum-norm", "recompute"),
        "dapo": ("token-mean", "recompute"), "gspo": ("seq-mean-token-mean", "recompute"),
        "cispo": ("token-mean", "recompute"), "rloo": ("seq-mean-token-sum", "rollout"),
        "reinforce_pp": ("seq-mean-token-mean", "recompute"),
        "dppo_tv": ("seq-mean-token-sum-norm", "rollout"), "dppo_kl": ("seq-mean-token-sum-norm", "rollout"),
        "drpo": ("seq-mean-token-sum-norm", "rollout"), "dgpo": ("token-mean", "recompute"),
        "dcmdp": ("seq-mean-token-mean", "recompute"),
    }
    for key in TABLE:
        assert key in OBJECTIVES
        agg, anchor, defaults = objective_info(key)
        assert (agg, anchor) == expected[key], key
        assert isinstance(defaults, dict)
        assert OBJECTIVES[key].fn.__doc__ and "arXiv" in (OBJECTIVES[key].fn.__doc__ + OBJECTIVES[key].reference)


def test_paper_defaults():
    assert objective_info("dapo")[2]["clip_eps_high"] == 0.28 and objective_info("dapo")[2]["dual_clip_c"] == 10
    assert objective_info("gspo")[2]["clip_eps_low"] == 3e-4 and objective_info("gspo")[2]["clip_eps_high"] == 4e-4
    assert objective_info("cispo")[2]["clip_eps_low"] == 10.0
    assert objective_info("drpo")[2]["delta"] == 12.5
    assert objective_info("dppo_tv")[2]["delta"] == 0.15 and objective_info("dppo_kl")[2]["delta"] == 0.05
    assert objective_info("grpo")[2]["kl_coef"] == 0.0
    assert objective_info("ppo")[2]["dual_clip_c"] is None
    d = objective_info("dgpo")[2]
    assert (d["n"], d["m"], d["clip_eps_low"], d["clip_eps_high"]) == (1, 2, 0.2, 0.2)


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ValueError, match="valid keys") as e:
        compute_policy_loss("nope", **_kw())
    assert "grpo" in str(e.value) and "nope" in str(e.value)
    with pytest.raises(KeyError):
        OBJECTIVES["nope"]


@pytest.mark.parametrize("name,params", [
    ("ppo", {"clip_eps_low": -0.1}), ("ppo", {"clip_eps_high": -1}), ("ppo", {"dual_clip_c": 1.0}),
    ("dapo", {"dual_clip_c": 0.5}), ("drpo", {"delta": 0.0}), ("dppo_tv", {"delta": -0.1}),
    ("dgpo", {"clip_eps_low": 1.0}), ("dgpo", {"n": 0}), ("dgpo", {"m": 0.5}), ("pg", {"is_mode": "x"}),
    ("grpo", {"kl_coef": -0.1}), ("grpo", {"kl_type": "k4"}), ("dcmdp", {"penalty": "quadratic"}),
    ("dcmdp", {"dcmdp_lambda": -1.0}), ("sapo", {"tau_pos": 0}), ("gspo", {"clip_eps_low": "a"}),
    ("drpo", {"mu_weighted": "yes"}), ("pg", {"is_clip": 0}),
])
def test_out_of_range_params(name, params):
    with pytest.raises(ValueError, match=name):
        compute_policy_loss(name, **_kw(), **params)


def test_unknown_param_lists_valid_ones():
    with pytest.raises(ValueError, match="valid params") as e:
        compute_policy_loss("ppo", **_kw(), clip_eps=0.2)
    assert "clip_eps_low" in str(e.value) and "'ppo'" in str(e.value)


def test_reregistration_and_override():
    with pytest.raises(ValueError, match="already registered"):
        register_objective("ppo")(lambda inp: inp.logprobs)
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(lambda r, g, **_: r)
    with pytest.raises(ValueError, match="anchor"):
        register_objective("x_bad", anchor="behaviour")
    with pytest.raises(ValueError, match="default_agg"):
        register_objective("x_bad", default_agg="sum")

    @register_objective("test_tmp_obj", defaults={"scale": 1.0})
    def tmp(inp, *, scale):
        return -scale * inp.advantages * inp.ratio

    try:
        @register_objective("test_tmp_obj", defaults={"scale": 1.0}, override=True)
        def tmp2(inp, *, scale):
            return -2 * scale * inp.advantages * inp.ratio

        loss, _ = compute_policy_loss("test_tmp_obj", **_kw())
        assert loss.item() == pytest.approx(-2.0)
    finally:
        OBJECTIVES.unregister("test_tmp_obj")
    assert "test_tmp_obj" not in OBJECTIVES


def test_plugin_module(tmp_path, monkeypatch):
    mod = tmp_path / "my_rlvr_plugin_xyz.py"
    mod.write_text(textwrap.dedent('''
        from rlvr.algorithms import register_objective, register_advantage

        @register_objective("my_pg_xyz", default_agg="seq-mean-token-sum", anchor="rollout",
                            defaults={"coef": 1.0})
        def my_pg(inp, *, coef):
            """Plain REINFORCE times coef."""
            return -coef * inp.advantages * inp.logprobs, {"clip_frac": 0.0}

        @register_advantage("my_adv_xyz", defaults={"shift": 0.0})
        def my_adv(rewards, group_index, *, shift, **_):
            return rewards - shift
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import_plugins(["my_rlvr_plugin_xyz"])
        assert "my_pg_xyz" in OBJECTIVES and "my_adv_xyz" in ADVANTAGES
        lp = torch.full((1, 2), -1.0, requires_grad=True)
        loss, met = compute_policy_loss("my_pg_xyz", logprobs=lp, old_logprobs=None,
                                        rollout_logprobs=lp.detach(), advantages=torch.tensor([2.0]),
                                        mask=torch.ones(1, 2), coef=0.5)
        loss.backward()
        assert torch.allclose(lp.grad, torch.full((1, 2), -1.0))
        assert met["clip_frac"] == 0.0
        a = compute_advantages("my_adv_xyz", torch.tensor([1.0, 2.0]), torch.tensor([0, 0]), shift=1.0)
        assert torch.equal(a, torch.tensor([0.0, 1.0]))
        with pytest.raises(ValueError, match="valid params"):
            compute_policy_loss("my_pg_xyz", logprobs=lp, old_logprobs=None, rollout_logprobs=lp.detach(),
                                advantages=torch.tensor([2.0]), mask=torch.ones(1, 2), scale=1)
    finally:
        OBJECTIVES.unregister("my_pg_xyz")
        ADVANTAGES.unregister("my_adv_xyz")
        sys.modules.pop("my_rlvr_plugin_xyz", None)


def test_needs_reference():
    assert not needs_reference("ppo", {})
    assert needs_reference("grpo", {"kl_coef": 0.001})
    assert not needs_reference("grpo", {"kl_coef": 0.0}, "grpo", {})
    assert needs_reference("ppo", None, "reinforce_pp", {"kl_coef": 0.01})
    assert needs_reference("pg", {}, "rloo", {"kl_coef": 0.01})
    with pytest.raises(ValueError):
        needs_reference("ppo", {"bogus": 1})


def test_missing_anchor_logprobs():
    kw = _kw()
    kw["old_logprobs"] = None
    with pytest.raises(ValueError, match="old_logprobs"):
        compute_policy_loss("ppo", **kw)
    kw = _kw()
    kw["rollout_logprobs"] = None
    with pytest.raises(ValueError, match="rollout_logprobs"):
        compute_policy_loss("drpo", **kw)
    # a recompute-anchored objective works without mu (no mismatch metrics)
    _, met = compute_policy_loss("ppo", **kw)
    assert "mismatch_abs_diff" not in met

"""configs/algorithm/<key>.yaml: every section-9 key has a preset whose names and params validate.

A preset file lists only what differs from `AlgorithmConfig`'s defaults (the GRPO preset); `load` merges
it over them as Hydra does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from rlvr.algorithms import (
    ADVANTAGES,
    OBJECTIVES,
    DCMDPController,
    compute_policy_loss,
    needs_reference,
    objective_info,
    resolve_advantage_params,
    resolve_correction,
    resolve_objective_params,
)
from rlvr.config.algorithm import AlgorithmConfig, correction_params

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "algorithm"
KEYS = ["pg", "ppo", "grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp", "dppo_tv", "dppo_kl",
        "drpo", "dgpo", "dcmdp", "sapo"]
TABLE_AGG = {"pg": "seq-mean-token-sum", "ppo": "token-mean", "grpo": "seq-mean-token-mean",
             "dr_grpo": "seq-mean-token-sum-norm", "dapo": "token-mean", "gspo": "seq-mean-token-mean",
             "cispo": "token-mean", "rloo": "seq-mean-token-sum", "reinforce_pp": "seq-mean-token-mean",
             "dppo_tv": "seq-mean-token-sum-norm", "dppo_kl": "seq-mean-token-sum-norm",
             "drpo": "seq-mean-token-sum-norm", "dgpo": "token-mean", "dcmdp": "seq-mean-token-mean"}
TABLE_ADV = {"pg": "grpo", "ppo": "gae", "grpo": "grpo", "dr_grpo": "dr_grpo", "dapo": "grpo", "gspo": "grpo",
             "cispo": "grpo", "rloo": "rloo", "reinforce_pp": "reinforce_pp", "dppo_tv": "dr_grpo",
             "dppo_kl": "dr_grpo", "drpo": "dr_grpo", "dgpo": "grpo", "dcmdp": "grpo"}


def preset_file(key) -> dict:
    text = (PRESET_DIR / f"{key}.yaml").read_text()
    assert text.startswith("# @package algorithm\n")
    return yaml.safe_load(text) or {}


def load(key) -> dict:
    """The preset as composed: its keys merged over the schema's defaults."""
    merged = OmegaConf.merge(OmegaConf.structured(AlgorithmConfig), preset_file(key))
    return OmegaConf.to_container(merged)


@pytest.mark.parametrize("key", KEYS)
def test_preset_valid(key):
    cfg = load(key)
    assert cfg["name"] == key
    assert cfg["advantage"] in ADVANTAGES and cfg["objective"] in OBJECTIVES
    resolve_advantage_params(cfg["advantage"], cfg["advantage_params"])
    params = resolve_objective_params(cfg["objective"], cfg["objective_params"])
    resolve_correction(correction_params(cfg["correction"]))
    agg = cfg["loss_agg_mode"] or objective_info(cfg["objective"])[0]
    if key in TABLE_AGG:
        assert agg == TABLE_AGG[key]
        assert cfg["advantage"] == TABLE_ADV[key]
    assert cfg["reward"] in ("correctness", "plus_minus")
    assert cfg["ppo_epochs"] >= 1 and cfg["mini_batches"] >= 1
    assert cfg["mini_batches"] == (1 if key in ("pg", "rloo") else 2)
    DCMDPController.from_config(cfg["dcmdp"])
    # the objective runs with the preset's params
    lp = -torch.rand(2, 4) - 0.1
    compute_policy_loss(cfg["objective"], logprobs=lp, old_logprobs=lp, rollout_logprobs=lp,
                        ref_logprobs=lp, advantages=torch.tensor([1.0, -1.0]), mask=torch.ones(2, 4),
                        loss_agg_mode=cfg["loss_agg_mode"], correction=correction_params(cfg["correction"]),
                        **params)


@pytest.mark.parametrize("key", KEYS)
def test_preset_lists_only_what_differs_from_the_defaults(key):
    """One place per value: a preset never restates a default (objective/advantage params excepted: Hydra
    merges those dicts, so they are the preset's own, and its header comment names the paper."""
    defaults = OmegaConf.to_container(OmegaConf.structured(AlgorithmConfig))
    text = (PRESET_DIR / f"{key}.yaml").read_text()
    assert "arXiv" in text.split("\n", 2)[1] or key == "pg", f"{key}: the header names no paper"
    for name, value in preset_file(key).items():
        if name in ("objective_params", "advantage_params"):
            continue
        if isinstance(value, dict):
            same = [k for k, v in value.items() if defaults[name][k] == v]
            assert not same, f"{key}: {name}.{same} restate the default"
        else:
            assert value != defaults[name], f"{key}: {name} restates the default {value!r}"


def test_preset_specifics():
    assert needs_reference(**{k: load("grpo")[k] for k in ("objective", "objective_params", "advantage",
                                                              "advantage_params")})
    assert needs_reference(**{k: load("rloo")[k] for k in ("objective", "objective_params", "advantage",
                                                             "advantage_params")})
    assert needs_reference(**{k: load("reinforce_pp")[k] for k in ("objective", "objective_params",
                                                                     "advantage", "advantage_params")})
    assert not needs_reference(**{k: load("dapo")[k] for k in ("objective", "objective_params", "advantage",
                                                                 "advantage_params")})
    dapo = load("dapo")
    assert dapo["reward"] == "plus_minus" and dapo["dynamic_sampling"] and dapo["overlong"]["enabled"]
    assert dapo["objective_params"]["clip_eps_high"] == 0.28 and dapo["objective_params"]["dual_clip_c"] == 10
    assert load("dcmdp")["dcmdp"]["enabled"] and not load("grpo")["dcmdp"]["enabled"]
    assert load("grpo")["objective_params"]["kl_coef"] > 0

from __future__ import annotations

import math

import pytest

from rlvr.verifier import REWARD_KINDS, VerifyResult, compute_rewards

RESULTS = [
    VerifyResult(1.0, "correct", "1"),
    VerifyResult(0.0, "wrong", "2"),
    VerifyResult(0.0, "no_answer", None),
    VerifyResult(0.0, "timeout", None),
    VerifyResult(0.0, "error", None),
]
def length_penalized(results, responses):
    """A custom reward, referenced by import path below."""
    return [r.score - 0.001 * len(resp) for r, resp in zip(results, responses)]


def wrong_length(results, responses):
    return [0.0]


RESPONSES = ["\\boxed{1}", "\\boxed{2}", "none", "\\boxed{9^9^9}", "?"]


def test_kinds():
    assert set(REWARD_KINDS) == {"correctness", "plus_minus", "format", "custom"}
    assert compute_rewards(RESULTS, RESPONSES) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert compute_rewards(RESULTS, RESPONSES, kind="plus_minus") == [1.0, -1.0, -1.0, -1.0, -1.0]
    got = compute_rewards(RESULTS, RESPONSES, kind="format", format_weight=0.1)
    assert got == pytest.approx([1.1, 0.1, 0.0, 0.0, 0.0])


def test_custom_by_import_path():
    got = compute_rewards(RESULTS, RESPONSES, kind="custom", custom=f"{__name__}:length_penalized")
    assert got == pytest.approx([1.0 - 0.009, -0.009, -0.004, -0.013, -0.001])
    assert compute_rewards(RESULTS, RESPONSES, kind="custom", custom=lambda rs, xs: [2.0] * len(rs)) == [2.0] * 5


def test_custom_errors_are_loud():
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES, kind="custom")
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=f"{__name__}:wrong_length")
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=lambda rs, xs: [math.nan] * len(rs))
    with pytest.raises((ImportError, AttributeError)):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=f"{__name__}:nope")
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES, kind="bogus")
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES[:2])


def test_result_record():
    r = VerifyResult(1.0, "wrong", "x")
    assert r.score == 0.0  # the score follows the reason
    assert VerifyResult.from_dict(r.to_dict()) == r
    assert set(r.to_dict()) == {"score", "reason", "extracted", "detail"}
    with pytest.raises(ValueError):
        VerifyResult(0.0, "maybe")


def _old_generate_path(results, responses, lengths, reward_cfg: dict, max_tokens: int) -> list[float]:
    """The reward as `orchestrator/steps.py: generate_and_score` computed it before `shaped_rewards`."""
    import torch

    from rlvr.algorithms import overlong_penalty
    from rlvr.config import overlong_cache_len

    rewards = compute_rewards(results, responses, kind=reward_cfg["kind"], format_weight=reward_cfg["format_weight"],
                              custom=reward_cfg["custom"])
    overlong = reward_cfg.get("overlong") or {}
    if overlong.get("enabled"):
        cache_len = overlong_cache_len(overlong, max_tokens)
        penalty = overlong_penalty(torch.tensor(lengths, dtype=torch.float32), max_tokens, cache_len).tolist()
        rewards = [r + p for r, p in zip(rewards, penalty)]
    return [float(r) for r in rewards]


@pytest.mark.parametrize("kind", ["correctness", "plus_minus", "format"])
@pytest.mark.parametrize("overlong", [None, {"enabled": True, "cache_len": 3, "cache_frac": 0.2},
                                      {"enabled": True, "cache_len": None, "cache_frac": 0.3},
                                      {"enabled": False, "cache_len": 0, "cache_frac": 0.2}])
def test_shaped_rewards_are_the_old_rewards_bit_for_bit(kind, overlong):
    from rlvr.config import overlong_cache_len
    from rlvr.verifier import shaped_rewards

    lengths, max_tokens = [1, 5, 7, 8, 11], 8
    reward_cfg = {"kind": kind, "format_weight": 0.13, "custom": None, "overlong": overlong}
    want = _old_generate_path(RESULTS, RESPONSES, lengths, reward_cfg, max_tokens)
    cache_len = overlong_cache_len(overlong, max_tokens) if overlong and overlong["enabled"] else None
    got = shaped_rewards(RESULTS, RESPONSES, lengths, kind=kind, format_weight=0.13, custom=None,
                         max_tokens=max_tokens, overlong_cache_len=cache_len)
    assert [x.hex() for x in got] == [x.hex() for x in want]
    assert all(type(x) is float for x in got)


def test_reward_settings_read_the_typed_config():
    from omegaconf import OmegaConf

    from rlvr.verifier import reward_settings

    cfg = OmegaConf.create({"algorithm": {"reward": "format", "overlong": {"enabled": True, "cache_len": None,
                                                                       "cache_frac": 0.25}},
                            "verifier": {"format_weight": 0.2, "custom_reward": None}, "rollout": {"max_tokens": 40}})
    assert reward_settings(cfg) == {"kind": "format", "format_weight": 0.2, "custom": None, "max_tokens": 40,
                                    "overlong_cache_len": 10}
    cfg.algorithm.overlong.enabled = False
    assert reward_settings(cfg)["overlong_cache_len"] is None

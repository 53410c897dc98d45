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
def length_penalized(completions, verdicts, **kwargs):
    """A custom reward in TRL's convention, referenced by import path below."""
    return [v.score - 0.001 * len(c) for v, c in zip(verdicts, completions)]


def wrong_length(completions, **kwargs):
    return [0.0]


def old_convention(results, responses):
    return [0.0] * len(results)


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
    assert compute_rewards(RESULTS, RESPONSES, kind="custom", custom=lambda completions, **kw: [2.0] * 5) == [2.0] * 5


def test_custom_errors_are_loud():
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES, kind="custom")
    with pytest.raises(ValueError, match="'wrong_length' returned 1 values for 5 completions"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=f"{__name__}:wrong_length")
    with pytest.raises(ValueError, match="infinite"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=lambda completions, **kw: [math.inf] * 5)
    with pytest.raises(ValueError, match="'<lambda>' returned 'x' \\(str\\)"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=lambda completions, **kw: ["x"] * 5)
    with pytest.raises(ValueError, match="returned float, not a list"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=lambda completions, **kw: 1.0)
    with pytest.raises(ValueError, match="cannot be imported.*nope"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=f"{__name__}:nope")
    with pytest.raises(ValueError, match="cannot be imported"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom="no_such_module_xyz:f")
    with pytest.raises(ValueError, match="old fn\\(results, responses\\) convention"):
        compute_rewards(RESULTS, RESPONSES, kind="custom", custom=f"{__name__}:old_convention")
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES, kind="bogus")
    with pytest.raises(ValueError):
        compute_rewards(RESULTS, RESPONSES[:2])


def test_trl_reward_function_gets_prompts_completions_and_every_column():
    """A reward function written for TRL's GRPOTrainer works unchanged: keywords, columns by name."""
    from examples.trl_arith.rewards import first_int_reward
    from rlvr.verifier.rewards import custom_rewards, load_reward_functions, reward_inputs

    problems = [{"prompt": "Q 2+3=? A ", "answer": "5", "level": 1}] * 2 + [{"prompt": "Q 9-1=? A ", "answer": "8"}]
    completions = ["5 apples", "6", "x 8 and 3"]
    seen = {}

    def spy(prompts, completions, answer, level, verdicts, completion_ids):  # no **kwargs: only what it names
        seen.update(prompts=prompts, answer=answer, level=level, verdicts=verdicts, ids=completion_ids)
        return [0.5, None, float("nan")]

    funcs = load_reward_functions([first_int_reward, spy], [1.0, 2.0])
    totals, parts = custom_rewards(funcs, completions=completions, verdicts=RESULTS[:3],
                                   **reward_inputs(problems, None, [[1], [2], [3, 4]]))
    assert parts["first_int_reward"] == [1.0, 0.0, 1.0]
    assert parts["spy"][0] == 0.5 and all(math.isnan(v) for v in parts["spy"][1:])
    assert totals == [2.0, 0.0, 1.0]  # None/NaN: left out of the weighted sum (TRL's nansum)
    assert seen == {"prompts": ["Q 2+3=? A ", "Q 2+3=? A ", "Q 9-1=? A "], "answer": ["5", "5", "8"],
                    "level": [1, 1, None], "verdicts": RESULTS[:3], "ids": [[1], [2], [3, 4]]}


def test_reward_weights_names_and_part_means():
    from rlvr.verifier.rewards import load_reward_functions, part_means

    funcs = load_reward_functions(["examples.trl_arith.rewards:first_int_reward",
                                   "examples.trl_arith.rewards:short_reward"], [1.0, 0.25])
    assert [(f.name, f.weight) for f in funcs] == [("first_int_reward", 1.0), ("short_reward", 0.25)]
    assert load_reward_functions(funcs)[1].weight == 0.25  # loaded functions keep their weights
    with pytest.raises(ValueError, match="1 reward weights for 2 reward functions"):
        load_reward_functions([f.fn for f in funcs], [1.0])
    with pytest.raises(ValueError, match="two reward functions are named 'short_reward'"):
        load_reward_functions([funcs[1].fn, funcs[1].fn])
    assert part_means({"a": [1.0, math.nan, 0.0], "b": [math.nan]}) == {"a": 0.5}


def test_column_clashing_with_a_keyword_is_named():
    from rlvr.verifier.rewards import custom_rewards, load_reward_functions

    with pytest.raises(ValueError, match="column 'completions' clashes"):
        custom_rewards(load_reward_functions(length_penalized), prompts=["p"], completions=["c"],
                       verdicts=RESULTS[:1], columns={"completions": ["x"]})


def test_custom_reward_is_checked_at_config_validation():
    from rlvr.config import ConfigError, compose

    base = ["output_dir=/tmp/unused", "algorithm.reward=custom"]
    cfg = compose([*base, "verifier.custom_reward=[examples.trl_arith.rewards:first_int_reward,"
                   "examples.trl_arith.rewards:verified_reward]", "verifier.reward_weights=[1.0,0.5]"])
    assert cfg.verifier.custom_reward == ["examples.trl_arith.rewards:first_int_reward",
                                          "examples.trl_arith.rewards:verified_reward"]
    for overrides, match in ((["verifier.custom_reward=examples.trl_arith.rewards:nope"],
                              r"^config error: verifier\.custom_reward=.*nope.*cannot be imported"),
                             ([f"verifier.custom_reward={__name__}:old_convention"], "old fn"),
                             ([], "algorithm.reward=custom needs it"),
                             (["verifier.custom_reward=examples.trl_arith.rewards:short_reward",
                               "verifier.reward_weights=[1,2]"], r"verifier\.reward_weights=.*2 reward weights")):
        with pytest.raises(ConfigError, match=match):
            compose([*base, *overrides])
    with pytest.raises(ConfigError, match="only used with algorithm.reward=custom"):
        compose(["output_dir=/tmp/unused", "verifier.custom_reward=examples.trl_arith.rewards:short_reward"])


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
                            "verifier": {"format_weight": 0.2, "custom_reward": None,
                                         "reward_weights": None}, "rollout": {"max_tokens": 40}})
    assert reward_settings(cfg) == {"kind": "format", "format_weight": 0.2, "custom": None, "max_tokens": 40,
                                    "overlong_cache_len": 10}
    cfg.algorithm.overlong.enabled = False
    assert reward_settings(cfg)["overlong_cache_len"] is None
    cfg.algorithm.reward, cfg.verifier.custom_reward = "custom", "examples.trl_arith.rewards:first_int_reward"
    cfg.verifier.reward_weights = [0.5]
    funcs = reward_settings(cfg)["custom"]  # imported once, at start-up
    assert [(f.name, f.weight) for f in funcs] == [("first_int_reward", 0.5)]

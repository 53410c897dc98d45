"""Prompts longer than the context leaves room for are dropped at load time, counted in one line
(`rlvr.data.problem_sets.drop_long_prompts`, `prompt_token_limit`; `rlvr eval` and `rlvr rollout` through
`rlvr.evaluation.inputs.load_eval_problems`), instead of ending in vLLM's traceback."""

from __future__ import annotations

import pytest

from rlvr.data.problem_sets import drop_long_prompts, prompt_token_limit

GSM8K = "/work/shared/data/gsm8k_test.jsonl"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The default job's tiny model (context 256 positions, a character-level tokenizer)."""
    from rlvr.models.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny")
    build_tiny_model(out)
    return str(out)


def test_limit_defaults_to_context_minus_response(tiny_dir):
    assert prompt_token_limit(None, max_tokens=24, model_dir=tiny_dir, max_model_len=None)[0] == 256 - 24
    limit, why = prompt_token_limit(None, max_tokens=24, model_dir=tiny_dir, max_model_len=128)
    assert limit == 104 and "max_model_len=128" in why and "data.max_prompt_tokens" in why
    assert prompt_token_limit(50, max_tokens=24, model_dir=tiny_dir, max_model_len=128) == (
        50, "data.max_prompt_tokens=50")


def test_long_prompts_are_dropped_and_counted_in_one_line():
    problems = [{"prompt": str(i)} for i in range(5)]
    ids = [[0] * n for n in (3, 9, 4, 10, 1)]
    lines = []
    kept, kept_ids = drop_long_prompts(problems, ids, 4, "why it is 4", lines.append)
    assert [p["prompt"] for p in kept] == ["0", "2", "4"] and [len(x) for x in kept_ids] == [3, 4, 1]
    assert lines == ["dropped 2 of 5 problems: prompt longer than 4 tokens (why it is 4)"]


def test_nothing_dropped_returns_the_same_lists_and_logs_nothing():
    problems, ids, lines = [{"prompt": "a"}], [[1, 2]], []
    assert drop_long_prompts(problems, ids, 2, "", lines.append) == (problems, ids)
    assert drop_long_prompts(problems, ids, None, "", lines.append) == (problems, ids)
    assert lines == []


def test_all_dropped_is_one_clear_error():
    with pytest.raises(ValueError, match=r"all 2 problems have prompts longer than 3 tokens \(ctx\).*"
                                         r"shortest is 5, the longest 7: raise data.max_prompt_tokens"):
        drop_long_prompts([{}, {}], [[0] * 5, [0] * 7], 3, "ctx", print)


def test_eval_drops_gsm8k_prompts_the_tiny_model_cannot_hold(tiny_dir, capsys):
    """`rlvr eval` of the default model on GSM8K: the character-level prompts of most problems do not fit
    in 256 positions; those are dropped before the engine starts, with one line naming how many and why."""
    from rlvr.evaluation.config import parse_overrides
    from rlvr.evaluation.inputs import load_eval_problems

    cfg = parse_overrides([f"model={tiny_dir}", f"data.eval_path={GSM8K}", "limit=40", "max_tokens=64"])
    problems = load_eval_problems(cfg, tiny_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlvr eval: dropped ")
    assert "prompt longer than 192 tokens (the model's context 256 - max_tokens=64" in err[0]
    dropped = int(err[0].split()[3])
    assert 0 < dropped < 40 and len(problems) == 40 - dropped
    assert len(load_eval_problems(cfg)) == 40  # without a model: nothing is dropped

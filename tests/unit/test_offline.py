"""Offline samples without the stack: parquet rows -> the loop's groups, the per-epoch order and its
resumable state, and one clear error for every kind of bad file or setting."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvr.config import compose
from rlvr.rollout.offline import SCHEMA, OfflineError, OfflineSource, read_rollouts, write_rollouts
from rlvr.rollout.offline_cli import parse_rollout_args, rollout_main, weight_version


def _row(p: int, j: int, *, reason: str = "wrong", length: int = 3, version: int = 0) -> dict:
    ids = [10 + p + j + t for t in range(length)]
    return {"prompt_index": p, "sample_index": j, "prompt": f"question {p}", "prompt_ids": [1, 2, 3 + p],
            "response": f"answer {p}.{j}", "response_ids": ids, "logprobs": [-0.1 * (t + 1) - 0.01 * j for t in ids],
            "finish_reason": "stop", "reward": float(reason == "correct"), "correct": reason == "correct",
            "reason": reason, "extracted": str(p) if reason != "no_answer" else None, "gold": str(p),
            "version": version}


def _rows(counts: dict[int, int]) -> list[dict]:
    """`counts[p]` samples of prompt p; sample 0 of every prompt is correct."""
    rows = [_row(p, j, reason="correct" if j == 0 else "wrong") for p, n in counts.items() for j in range(n)]
    return rows[::-1]  # rows of a prompt need not be contiguous nor in order in the file


def _cfg(tmp_path, path, *overrides: str):
    """The run's config with attribute access: the typed `Config` (or, before compose returned it, the
    dict as an OmegaConf node)."""
    from omegaconf import OmegaConf

    cfg = compose([f"output_dir={tmp_path / 'run'}", "algorithm=pg", "rollout.source=offline",
                   f"rollout.offline_path={path}", "data.prompts_per_step=2", "rollout.n=2", *overrides])
    return OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg


def _source(tmp_path, counts, *overrides, name="rollouts.parquet"):
    path = tmp_path / name
    write_rollouts(path, _rows(counts), {"temperature": 1.0})
    return OfflineSource(_cfg(tmp_path, path, *overrides)), path


# ------------------------------------------------------------------------------------- round trip


def test_groups_are_the_files_samples(tmp_path):
    from rlvr.orchestrator.steps import rollout_metrics, to_batch

    counts = {0: 2, 1: 3, 2: 1, 5: 4}  # any n per prompt, gaps in prompt_index
    source, _ = _source(tmp_path, counts)
    seen = {}
    for step in range(2):
        groups, timing, extra = source.next_groups(step)
        assert extra == 0 and timing["perf/generate_s"] == 0.0 and timing["perf/verify_s"] == 0.0
        assert timing["offline/epoch"] == 0 and timing["offline/version_mean"] == 0.0
        assert len(groups) == 2
        for i, g in enumerate(groups):
            p = g.problem["offline_prompt_index"]
            seen[p] = g
            assert g.problem["prompt"] == f"question {p}" and g.problem["answer"] == str(p)
            assert g.prompt_ids == [1, 2, 3 + p]
            assert len(g.samples) == counts[p]
            for j, (s, r, reward) in enumerate(zip(g.samples, g.results, g.rewards)):
                want = _row(p, j, reason="correct" if j == 0 else "wrong")
                assert s.prompt_index == i and s.token_ids == want["response_ids"] and s.text == want["response"]
                assert s.logprobs == pytest.approx(want["logprobs"], abs=1e-6)  # stored as float32
                assert r.reason == want["reason"] and reward == want["reward"]
        batch, rewards = to_batch(groups, pad_id=0)
        rows = [s for g in groups for s in g.samples]
        for k, s in enumerate(rows):  # mu in the batch is the file's log-probs
            assert batch.rollout_logprobs[k, : len(s.logprobs)].tolist() == pytest.approx(s.logprobs)
        assert rewards.tolist() == [x for g in groups for x in g.rewards]
        metrics = rollout_metrics(groups)
        assert metrics["rollout/samples"] == len(rows)
    assert sorted(seen) == sorted(counts)  # two steps of two prompts: the whole file once


def test_rewards_follow_the_runs_reward_setting(tmp_path):
    source, _ = _source(tmp_path, {0: 2, 1: 2}, "algorithm.reward=plus_minus")
    groups, _, _ = source.next_groups(0)
    assert [g.rewards for g in groups] == [[1.0, -1.0], [1.0, -1.0]]


def test_overlong_shaping_applies_to_logged_samples(tmp_path):
    # responses of 3 tokens, max_tokens 4, cache 2: (4 - 2 - 3) / 2 = -0.5 on top of the 1/0 reward
    source, _ = _source(tmp_path, {0: 2, 1: 2}, "algorithm.overlong.enabled=true", "algorithm.overlong.cache_len=2",
                        "rollout.max_tokens=4")
    groups, _, _ = source.next_groups(0)
    assert [g.rewards for g in groups] == [[0.5, -0.5], [0.5, -0.5]]


def test_directory_of_files(tmp_path):
    (tmp_path / "d").mkdir()
    write_rollouts(tmp_path / "d" / "a.parquet", _rows({0: 2, 1: 2}))
    write_rollouts(tmp_path / "d" / "b.parquet", _rows({0: 2}))  # prompt 0 again: another file, another group
    table, groups, _ = read_rollouts(tmp_path / "d")
    assert table.num_rows == 6 and len(groups) == 3
    assert [(g[0].endswith("a.parquet"), g[1]) for g in groups] == [(True, 0), (True, 1), (False, 0)]


def test_weight_version():
    assert weight_version("/runs/x/checkpoints/step_12/hf") == 12
    assert weight_version("/runs/x/checkpoints/step_3") == 3
    assert weight_version("/models/Qwen3-4B") == 0


# ------------------------------------------------------------------------------- epochs and resume


def _order(source, steps):
    return [[g.problem["offline_prompt_index"] for g in source.next_groups(s)[0]] for s in range(steps)]


def test_every_epoch_is_a_shuffled_pass_over_the_prompts(tmp_path):
    counts = {p: 2 for p in range(10)}
    source, path = _source(tmp_path, counts)
    order = _order(source, 10)  # 2 prompts per step: 5 steps per epoch
    epochs = [sum(order[i:i + 5], []) for i in (0, 5)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(10))
    again = OfflineSource(_cfg(tmp_path, path))
    assert _order(again, 10) == order  # the same seed, the same order
    other = OfflineSource(_cfg(tmp_path, path, "seed=1"))
    assert _order(other, 5) != order[:5]


def test_state_dict_resumes_exactly(tmp_path):
    counts = {p: 2 for p in range(7)}  # 7 prompts, 2 per step: batches cross epoch boundaries
    full, path = _source(tmp_path, counts)
    expected = _order(full, 9)
    first = OfflineSource(_cfg(tmp_path, path))
    head = _order(first, 4)
    state = json.loads(json.dumps(first.state_dict()))  # it goes through driver_state.json
    resumed = OfflineSource(_cfg(tmp_path, path))
    resumed.load_state_dict(state)
    assert head + _order(resumed, 5) == expected


def test_state_of_another_file_or_seed_is_refused(tmp_path):
    source, path = _source(tmp_path, {p: 2 for p in range(4)})
    state = source.state_dict()
    other, _ = _source(tmp_path, {p: 2 for p in range(5)}, name="other.parquet")
    with pytest.raises(OfflineError, match="prompts=4.*prompts=5"):
        other.load_state_dict(state)
    with pytest.raises(OfflineError, match="seed"):
        OfflineSource(_cfg(tmp_path, path, "seed=3")).load_state_dict(state)


# ----------------------------------------------------------------------------------------- errors


def _table(rows, **replace) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    for name, column in replace.items():
        i = table.column_names.index(name)
        table = table.drop_columns(name) if column is None else table.set_column(i, name, column)
    return table


@pytest.mark.parametrize(("change", "message"), [
    (lambda rows: _table(rows, reason=None), "missing column 'reason'"),
    (lambda rows: _table(rows, response_ids=pa.array([str(r["response_ids"]) for r in rows])),
     "column 'response_ids' has type string, expected list of integers"),
    (lambda rows: _table(rows, logprobs=pa.array([[1] for _ in rows])),
     "int64>, expected list of floats"),
    (lambda rows: _table(rows, version=pa.array([1.5 for _ in rows])),
     "column 'version' has type double, expected integer"),
    (lambda rows: _table(rows[:0]), "no rows"),
    (lambda rows: _table([dict(rows[0], logprobs=[-0.1])] + rows[1:]),
     "row 0: column 'logprobs' has 1 values for 3 response_ids"),
    (lambda rows: _table([dict(rows[0], logprobs=[-0.1, math.nan, -0.2])] + rows[1:]),
     "column 'logprobs' holds non-finite values"),
    (lambda rows: _table([dict(rows[0], logprobs=[-0.1, 0.5, -0.2])] + rows[1:]),
     "column 'logprobs' holds positive values"),
    (lambda rows: _table(rows[:1] + [dict(rows[1], reason="maybe")]), "row 1: column 'reason' is 'maybe'"),
    (lambda rows: _table(rows[:1] + [dict(rows[1], gold=None)]), "column 'gold' has 1 null values"),
    (lambda rows: _table(rows[:1] + [dict(rows[1], response_ids=[5, None, 6])]),
     "column 'response_ids' holds null token ids"),
])
def test_bad_files_name_the_file_and_column(tmp_path, change, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(change(_rows({0: 2, 1: 2})), path)
    with pytest.raises(OfflineError) as err:
        read_rollouts(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_files_without_optional_columns_are_read(tmp_path):
    path = tmp_path / "min.parquet"
    pq.write_table(_table(_rows({0: 2, 1: 1}), sample_index=None, extracted=None, reward=None, correct=None), path)
    table, groups, meta = read_rollouts(path)
    assert table.num_rows == 3 and len(groups) == 2 and meta == {}


def test_not_parquet_missing_and_empty_directory(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(OfflineError, match="x.parquet: not a readable parquet file"):
        read_rollouts(tmp_path / "x.parquet")
    with pytest.raises(OfflineError, match="nope.parquet: file not found"):
        read_rollouts(tmp_path / "nope.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OfflineError, match="empty: no .parquet files"):
        read_rollouts(tmp_path / "empty")


def test_settings_the_file_cannot_serve(tmp_path):
    path = tmp_path / "r.parquet"
    write_rollouts(path, _rows({0: 2, 1: 2}))
    with pytest.raises(OfflineError, match="data.prompts_per_step=4 exceeds the 2 prompts"):
        OfflineSource(_cfg(tmp_path, path, "data.prompts_per_step=4"))

    class Run:  # a model whose vocabulary is smaller than the file's token ids
        model_dir = str(tmp_path / "model")
        log = staticmethod(print)

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"vocab_size": 12}))
    with pytest.raises(OfflineError, match="outside the model's vocabulary"):
        OfflineSource(_cfg(tmp_path, path), Run()).next_groups(0)


def test_rows_of_one_prompt_must_share_its_prompt_ids(tmp_path):
    rows = _rows({0: 2, 1: 2})
    rows[0] = dict(rows[0], prompt_ids=[9, 9])
    write_rollouts(tmp_path / "r.parquet", rows)
    source = OfflineSource(_cfg(tmp_path, tmp_path / "r.parquet"))
    with pytest.raises(OfflineError, match="prompt_index 1: its rows disagree on column 'prompt_ids'"):
        source.next_groups(0)


# ------------------------------------------------------------------------------- rollout settings


def test_rollout_args(tmp_path, capsys):
    cfg = parse_rollout_args(["model=m", "data.path=p.jsonl"])
    assert (cfg.n, cfg.temperature) == (4, 1.0)
    assert parse_rollout_args(["model=m", "data.path=p.jsonl", "n=8", "temperature=0.7"]).n == 8
    for argv, message in ((["model=m", "data.path=p", "k=4"], "k is an eval setting"),
                          (["model=m", "data.path=p", "temperature=0"], "temperature must be > 0"),
                          (["model=m", "data.path=p", "bogus=1"], "unknown key 'bogus'"),
                          (["model=m", "nokey"], "expected key=value"),
                          (["data.path=p"], "model=PATH is required"),
                          ([f"model={tmp_path / 'none'}", "data.path=p"], "model not found")):
        assert rollout_main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("rlvr rollout: ") and message in err and err.count("\n") == 1, err

"""`load_problem_sets`: the run's (train, held-out, warm-start) problems from the typed `DataConfig`, the
same as the orchestrator's dict-reading version computed them (frozen copy below)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rlvr.config import DataConfig, GeneratedDataConfig
from rlvr.data import generate_problems, load_problem_sets, load_problems


def _old_load_problem_sets(cfg: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """`rlvr/orchestrator/setup.py: load_problem_sets` before it moved here (reasoning-gym branch aside)."""
    data = cfg["data"]
    gen = data["generated"]
    if data["train_path"]:
        kwargs = dict(prompt_key=data["prompt_key"], answer_key=data["answer_key"], format=data["format"],
                      on_bad_row=data["on_bad_row"], subset=data["subset"])
        train = load_problems(data["train_path"], split=data["train_split"], **kwargs)
        heldout = (load_problems(data["eval_path"], split=data["eval_split"], **kwargs) if data["eval_path"]
                   else train[: data["eval_size"] or None])
    else:
        train = generate_problems(gen["train_size"], cfg["seed"], "train", max_operand=gen["max_operand"],
                                  ops=list(gen["ops"]))
        heldout = generate_problems(gen["heldout_size"], cfg["seed"], "heldout", max_operand=gen["max_operand"],
                                    ops=list(gen["ops"]))
    if data["eval_size"]:
        heldout = heldout[: data["eval_size"]]
    warmstart = [p for p in train if "solution" in p]
    return train, heldout, warmstart


def _files(tmp_path):
    for name, count in (("train.jsonl", 30), ("test.jsonl", 12)):
        (tmp_path / name).write_text("".join(json.dumps({"question": f"{name} {i}?", "answer": f"#### {i}"}) + "\n"
                                             for i in range(count)))
    return str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl")


@pytest.mark.parametrize("case", ["default", "small_generated", "train_file", "both_files", "eval_size_all"])
def test_problem_sets_are_the_old_ones(tmp_path, case):
    train_path, eval_path = _files(tmp_path)
    data = {"default": DataConfig(),
            "small_generated": DataConfig(eval_size=7, generated=GeneratedDataConfig(train_size=50, heldout_size=20,
                                                                                     max_operand=5, ops=["+"])),
            "train_file": DataConfig(train_path=train_path, eval_size=5),
            "both_files": DataConfig(train_path=train_path, eval_path=eval_path, eval_size=4),
            "eval_size_all": DataConfig(train_path=train_path, eval_path=eval_path, eval_size=0)}[case]
    for seed in (0, 3):
        got = load_problem_sets(data, seed)
        assert got == _old_load_problem_sets({"data": dataclasses.asdict(data), "seed": seed})
        assert got[0] and got[1]
    if case == "default":
        assert len(got[1]) == 200 and len(got[2]) == len(got[0])  # generated problems all carry a solution

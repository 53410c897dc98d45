"""The problem sets of a training run: (train, held-out, warm-start), generated or read from the
configured files. Kept apart from `datasets.py` (files) and `reasoning_gym.py` (generated tasks) so that
those two never import each other: this module is the one place that combines them."""

from __future__ import annotations

from rlvr.data.datasets import load_problems
from rlvr.data.reasoning_gym import drop_overlap, generate, is_reasoning_gym_path
from rlvr.data.tasks import generate_problems


def load_problem_sets(data_cfg, seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, held-out, warm-start) problems for a ``DataConfig``: generated arithmetic (no
    ``train_path``), reasoning-gym tasks (held-out disjoint from train), or the configured files.
    ``eval_size`` (0: all) caps the held-out set; warm-start problems are those with a worked solution."""
    data = data_cfg
    if is_reasoning_gym_path(data.train_path or ""):
        train, heldout = load_train_heldout(data.train_path, data.eval_path, train_split=data.train_split,
                                            eval_split=data.eval_split)
    elif data.train_path:
        kwargs = dict(prompt_key=data.prompt_key, answer_key=data.answer_key, format=data.format,
                      on_bad_row=data.on_bad_row, subset=data.subset)
        train = load_problems(data.train_path, split=data.train_split, **kwargs)
        heldout = (load_problems(data.eval_path, split=data.eval_split, **kwargs) if data.eval_path
                   else train[: data.eval_size or None])
    else:
        gen = data.generated
        train = generate_problems(gen.train_size, seed, "train", max_operand=gen.max_operand, ops=list(gen.ops))
        heldout = generate_problems(gen.heldout_size, seed, "heldout", max_operand=gen.max_operand,
                                    ops=list(gen.ops))
    if data.eval_size:
        heldout = heldout[: data.eval_size]
    warmstart = [p for p in train if "solution" in p]
    return train, heldout, warmstart


def load_train_heldout(train_path: str, eval_path: str | None = None, *, train_split: str = "train",
                       eval_split: str = "test") -> tuple[list[dict], list[dict]]:
    """(train, held-out) for a reasoning-gym ``train_path``: ``train_path`` at ``train_split``;
    ``eval_path`` (or ``train_path`` when None) at ``eval_split``; the training problems that are also
    held out are dropped. ``eval_path`` may also be a file, loaded with `load_problems`."""
    if eval_path is None or is_reasoning_gym_path(eval_path):
        heldout = generate(eval_path or train_path, eval_split)
    else:
        heldout = load_problems(eval_path, split=eval_split)
    train = drop_overlap(generate(train_path, train_split), heldout)
    if not train:
        raise ValueError(f"{train_path}: no training problems left after removing the held-out ones")
    return train, heldout

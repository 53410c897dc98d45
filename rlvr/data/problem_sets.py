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


def prompt_token_limit(max_prompt_tokens: int | None, *, max_tokens: int, model_dir: str,
                       max_model_len: int | None) -> tuple[int | None, str]:
    """(the longest prompt, in tokens, that leaves room for ``max_tokens`` of response; why), for
    ``data.max_prompt_tokens``: itself when set; else the context (``max_model_len`` when set, else the
    model config's ``max_position_embeddings``) minus ``max_tokens``. (None, why) when the model's config
    names no context length: then no prompt is dropped and the engine is the judge."""
    if max_prompt_tokens is not None:
        return max_prompt_tokens, f"data.max_prompt_tokens={max_prompt_tokens}"
    if max_model_len is not None:
        context, source = max_model_len, f"max_model_len={max_model_len}"
    else:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_dir)
        context = getattr(config.get_text_config(), "max_position_embeddings", None)
        if context is None:
            return None, f"{model_dir}: no max_position_embeddings in its config"
        source = f"the model's context {context}"
    return context - max_tokens, f"{source} - max_tokens={max_tokens}; data.max_prompt_tokens overrides it"


def drop_long_prompts(problems: list[dict], prompt_ids: list[list[int]], limit: int | None, why: str,
                      log, what: str = "problems") -> tuple[list[dict], list[list[int]]]:
    """(problems, prompt ids) without those whose prompt is longer than ``limit`` tokens (None: all kept).
    Counted in one ``log`` line naming ``why`` (the limit's origin, from `prompt_token_limit`); an empty
    result is a ``ValueError`` naming the longest prompt seen, so the user sees one line, not an engine's
    traceback on the first long prompt."""
    if limit is None:
        return problems, prompt_ids
    keep = [i for i, ids in enumerate(prompt_ids) if len(ids) <= limit]
    if len(keep) == len(problems):
        return problems, prompt_ids
    dropped = len(problems) - len(keep)
    if not keep:
        longest = max(len(ids) for ids in prompt_ids)
        raise ValueError(f"all {dropped} {what} have prompts longer than {limit} tokens ({why}); the shortest "
                         f"is {min(len(ids) for ids in prompt_ids)}, the longest {longest}: raise "
                         f"data.max_prompt_tokens or max_model_len, or lower max_tokens")
    log(f"dropped {dropped} of {len(problems)} {what}: prompt longer than {limit} tokens ({why})")
    return [problems[i] for i in keep], [prompt_ids[i] for i in keep]

"""What `rlvr eval` and `rlvr rollout` share before sampling: the model directory, the problems, the
prompts, and an in-process vLLM engine with its environment."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rlvr.evaluation.config import EvalConfig, EvalError


def resolve_model_dir(path: str) -> str:
    """An HF model directory for ``path``: itself, its ``hf/`` export (a checkpoint ``step_N``), the newest
    complete checkpoint of a run directory, or ``path`` unchanged when it names a hub model."""
    local = Path(path).expanduser()
    if not local.exists():
        if _looks_like_hub_id(path):
            return path
        raise EvalError(f"model not found: {path}")
    if local.is_file():
        raise EvalError(f"model must be a directory, got a file: {path}")
    for candidate in (local, local / "hf"):
        if _is_hf_model_dir(candidate):
            return str(candidate.resolve())
    checkpoints = local / "checkpoints"
    if checkpoints.is_dir():
        steps = sorted((int(d.name.split("_", 1)[1]), d) for d in checkpoints.iterdir()
                       if re.fullmatch(r"step_\d+", d.name) and (d / "hf" / "config.json").is_file())
        if steps:
            return str((steps[-1][1] / "hf").resolve())
    raise EvalError(f"no HF model in {path} (expected config.json there or in its hf/ subdirectory)")


def _is_hf_model_dir(path: Path) -> bool:
    """A run directory has a config.json too (rlvr's), without the `model_type` every HF model config has."""
    config = path / "config.json"
    try:
        return config.is_file() and "model_type" in json.loads(config.read_text())
    except (OSError, json.JSONDecodeError):
        return False


def _looks_like_hub_id(path: str) -> bool:
    return (not path.startswith(("/", ".", "~")) and path.count("/") == 1
            and all(re.fullmatch(r"[\w.-]+", part) for part in path.split("/")))


def load_eval_problems(cfg: EvalConfig, model_dir: str | None = None, command: str = "rlvr eval") -> list[dict]:
    """The problems of ``data.eval_path`` (split ``data.eval_split``), the first ``limit`` of them; given
    ``model_dir``, without those whose prompt leaves no room for ``max_tokens`` in the context (one line
    on stderr counts them; see `drop_long_eval_prompts`)."""
    from rlvr.data import load_problems

    data = cfg.data
    try:
        problems = load_problems(data.eval_path, prompt_key=data.prompt_key, answer_key=data.answer_key,
                                 format=data.format, on_bad_row=data.on_bad_row, limit=cfg.limit,
                                 split=data.eval_split, subset=data.subset)
    except (FileNotFoundError, ValueError) as err:
        raise EvalError(str(err).splitlines()[0]) from None
    if not problems:
        raise EvalError(f"no problems in {data.eval_path}")
    return drop_long_eval_prompts(cfg, model_dir, problems, command) if model_dir else problems


def drop_long_eval_prompts(cfg: EvalConfig, model_dir: str, problems: list[dict], command: str) -> list[dict]:
    """``problems`` without those whose templated prompt is longer than ``data.max_prompt_tokens`` (default:
    the context minus ``max_tokens``), decided with the model's tokenizer before the engine starts: vLLM
    would otherwise fail the whole call with a long traceback on the first such prompt."""
    from transformers import AutoTokenizer

    from rlvr.data.problem_sets import drop_long_prompts, prompt_token_limit

    try:
        limit, why = prompt_token_limit(cfg.data.max_prompt_tokens, max_tokens=cfg.max_tokens, model_dir=model_dir,
                                        max_model_len=cfg.max_model_len)
    except OSError as err:
        raise EvalError(f"{model_dir}: cannot read the model's config ({str(err).splitlines()[0]})") from None
    if limit is None:
        return problems
    if limit < 1:
        raise EvalError(f"no room for a prompt: {why} leaves {limit} tokens; lower max_tokens or raise max_model_len")
    prompt_ids = tokenize_or_fail(AutoTokenizer.from_pretrained(model_dir), problems, cfg.data)
    try:
        kept, _ = drop_long_prompts(problems, prompt_ids, limit, why,
                                    log=lambda line: print(f"{command}: {line}", file=sys.stderr, flush=True))
    except ValueError as err:
        raise EvalError(str(err)) from None
    return kept


def tokenize_or_fail(tokenizer, problems: list[dict], data_cfg) -> list[list[int]]:
    """`rlvr.data.tokenize_prompts`, its errors (e.g. the chat template on a tokenizer without one) as
    ``EvalError``."""
    from rlvr.data import tokenize_prompts

    try:
        return tokenize_prompts(tokenizer, problems, data_cfg)
    except ValueError as err:
        raise EvalError(str(err).splitlines()[0]) from None


def default_output_dir(model: str, kind: str = "eval") -> str:
    """``outputs/<kind>/<model name>-<timestamp>``; a checkpoint's ``hf/`` export is named after its
    ``step_N``."""
    path = Path(model.rstrip("/"))
    if path.name == "hf":
        path = path.parent
    name = re.sub(r"[^\w.-]+", "_", path.name or "model")
    return str(Path("outputs") / kind / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _set_engine_env(cfg: EvalConfig) -> int:
    from rlvr.runtime import actor_env

    threads = cfg.threads or max(1, min(os.cpu_count() or 1, 8))
    env = actor_env(cfg.cache_dir, kv_cache_gb=cfg.kv_cache_gb, threads=threads)
    forced = {"VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_KVCACHE_SPACE", "TMPDIR"}
    for key, value in env.items():
        if key in forced:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    return threads


@contextmanager
def open_engine(cfg: EvalConfig, model_dir: str):
    """A ``VLLMEngine`` in this process (no Ray); the rendezvous file vLLM leaves in TMPDIR is removed
    on exit."""
    threads = _set_engine_env(cfg)
    from rlvr.rollout.engine import VLLMEngine

    tmp = Path(os.environ["TMPDIR"])
    before = set(tmp.glob("vllm_dist_*"))
    engine = VLLMEngine(model_dir, seed=cfg.seed, dtype=cfg.dtype, max_model_len=cfg.max_model_len,
                        kv_cache_gb=cfg.kv_cache_gb, threads=threads)
    ours = set(tmp.glob("vllm_dist_*")) - before  # vLLM's rendezvous file, never removed by vLLM
    try:
        yield engine
    finally:
        for path in ours:
            path.unlink(missing_ok=True)

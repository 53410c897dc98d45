"""`rlvr eval`: pass@1, pass@k and maj@k of a model (or a run's checkpoint) on a problem file.

    rlvr eval model=PATH data.path=FILE [output_dir=DIR] [k=4] [n=K] [temperature=0.6] [max_tokens=1024]
              [data.prompt_key=... data.answer_key=... data.format=auto|gsm8k|math|plain
               data.template=plain|boxed_instruction|chat data.limit=N] [seed=0]
              [verifier.timeout_s=5 verifier.workers=2]

Every argument is a ``key=value`` override (OmegaConf dotlist) of ``EvalConfig``; an unknown key or a
value of the wrong type is refused with one line naming the key. For each problem ``n`` samples are
drawn (``n`` defaults to ``k``; ``n >= k``) and verified against the gold answer:

- ``pass@1``: the fraction of correct samples, averaged over problems;
- ``pass@k``: the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021, arXiv 2107.03374),
  averaged over problems (``c`` correct samples out of ``n``);
- ``maj@k``: a majority vote over the answers extracted from the first ``k`` samples (equivalent answer
  strings grouped by ``normalize_answer``; samples without an answer do not vote; ties go to the answer
  seen first); the problem counts as solved iff the first sample carrying the voted answer was judged
  correct.

Writes ``<output_dir>/eval.json`` (the metrics and the settings) and ``<output_dir>/samples.jsonl``
(one line per sample). The vLLM engine runs in this process; no Ray.

``model`` is an HF causal-LM directory, a checkpoint directory ``.../checkpoints/step_N`` (its ``hf/``
export is used), a run directory (its newest complete checkpoint), or a hub model name.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rlvr.config import VerifierConfig


class EvalError(Exception):
    """A user error: bad settings, a missing model or data file. Reported as one line."""


# --------------------------------------------------------------------------------------------- config


@dataclass
class EvalDataConfig:
    path: str | None = None                # jsonl/json/parquet file (or a hub dataset name)
    prompt_key: str | None = None          # None: the format's default (question/problem/prompt)
    answer_key: str | None = None          # None: the format's default (answer, or solution for math)
    format: str = "auto"                   # auto | gsm8k | math | plain
    template: str = "plain"                # plain | boxed_instruction | chat
    system_prompt: str | None = None       # chat template only
    instruction: str | None = None         # boxed_instruction and chat: replaces the \boxed{} instruction
    limit: int | None = None               # the first N problems
    on_bad_row: str = "error"              # error | skip
    split: str = "test"                    # hub datasets only
    subset: str | None = None              # hub datasets only


@dataclass
class EvalConfig:
    model: str | None = None
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    output_dir: str | None = None          # None: outputs/eval/<model name>-<timestamp>
    k: int = 4
    n: int | None = None                   # samples per problem; None: k
    temperature: float = 0.6               # 0: greedy (one generation, repeated n times)
    top_p: float = 1.0
    max_tokens: int = 1024
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    dtype: str = "float32"                 # float32 | bfloat16 | float16
    max_model_len: int | None = None
    kv_cache_gb: float = 1.0
    threads: int | None = None             # CPU threads for vLLM; None: min(cpu count, 8)
    cache_dir: str = ".cache"              # compile caches and temp files
    verifier: VerifierConfig = field(default_factory=VerifierConfig)  # the same block as `rlvr train`


def parse_overrides(argv: Sequence[str]) -> EvalConfig:
    """``key=value`` strings -> a validated ``EvalConfig``; ``EvalError`` (one line) on any problem."""
    from omegaconf import OmegaConf

    for arg in argv:
        if "=" not in arg or arg.startswith("="):
            raise EvalError(f"expected key=value, got {arg!r} (see `rlvr eval --help`)")
    return build_config(lambda: OmegaConf.from_dotlist(list(argv)))


def build_config(make_overrides) -> EvalConfig:
    """``EvalConfig`` defaults merged with what ``make_overrides()`` returns (any OmegaConf-mergeable
    object), validated; ``EvalError`` (one line) on any problem."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(EvalConfig), make_overrides())
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise EvalError(_omegaconf_message(err)) from None
    validate(cfg)
    return cfg


def _omegaconf_message(err: Exception) -> str:
    key = getattr(err, "full_key", None) or ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if type(err).__name__ in ("ConfigKeyError", "ConfigAttributeError") and "not in" in first:
        return f"unknown key {key!r}" if key else f"unknown key ({first})"
    return f"bad value for {key}: {first}" if key else first


def validate(cfg: EvalConfig) -> None:
    from rlvr.data import FORMATS, PROMPT_TEMPLATES
    from rlvr.verifier import ANSWER_FORMATS

    if not cfg.model:
        raise EvalError("model=PATH is required (an HF model directory or a run's checkpoints/step_N)")
    if not cfg.data.path:
        raise EvalError("data.path=FILE is required (a jsonl/json/parquet problem file)")
    if cfg.n is None:
        cfg.n = cfg.k
    if cfg.k < 1:
        raise EvalError(f"k must be >= 1, got {cfg.k}")
    if cfg.n < cfg.k:
        raise EvalError(f"n (samples per problem) must be >= k, got n={cfg.n} k={cfg.k}")
    if cfg.temperature < 0:
        raise EvalError(f"temperature must be >= 0, got {cfg.temperature}")
    if not 0 < cfg.top_p <= 1:
        raise EvalError(f"top_p must be in (0, 1], got {cfg.top_p}")
    if cfg.max_tokens < 1:
        raise EvalError(f"max_tokens must be >= 1, got {cfg.max_tokens}")
    if cfg.data.limit is not None and cfg.data.limit < 1:
        raise EvalError(f"data.limit must be >= 1, got {cfg.data.limit}")
    checks = [("data.format", cfg.data.format, FORMATS), ("data.template", cfg.data.template, PROMPT_TEMPLATES),
              ("data.on_bad_row", cfg.data.on_bad_row, ("error", "skip")),
              ("verifier.mode", cfg.verifier.mode, ("inline", "process", "http")),
              ("verifier.answer_format", cfg.verifier.answer_format, ANSWER_FORMATS)]
    for key, value, allowed in checks:
        if value not in allowed:
            raise EvalError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    if cfg.data.system_prompt is not None and cfg.data.template != "chat":
        raise EvalError("data.system_prompt needs data.template=chat")
    if cfg.data.instruction is not None and cfg.data.template == "plain":
        raise EvalError("data.instruction needs data.template=boxed_instruction or chat")
    if cfg.verifier.workers < 1 or cfg.verifier.timeout_s <= 0:
        raise EvalError("verifier.workers must be >= 1 and verifier.timeout_s > 0")
    if cfg.verifier.mode == "http" and not cfg.verifier.url:
        raise EvalError("verifier.url is required with verifier.mode=http")


# ------------------------------------------------------------------------------------------ metrics


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct out of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``.

    The probability that a random ``k``-subset of the ``n`` samples holds at least one correct one
    (Chen et al. 2021). Exact integer binomials, so large ``n`` loses no precision.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k takes integers, got n={n!r} c={c!r} k={k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k} n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c} n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|\\left|\\right|\s+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def normalize_answer(answer: str | None) -> str | None:
    """The key majority voting groups answers by: equal keys are the same answer.

    Removes surrounding ``$``, spacing commands and whitespace, ``\\text{...}`` wrappers, thousands
    separators and a trailing period; ``\\dfrac``/``\\tfrac`` become ``\\frac``; plain decimal numbers
    take one canonical spelling (``3.0`` -> ``3``, ``+0.50`` -> ``0.5``). ``None`` or an empty answer
    gives ``None`` (no vote).
    """
    if answer is None:
        return None
    text = str(answer).strip().strip("$").strip()
    text = _TEXT_WRAP.sub(r"\1", text)
    text = _SPACING.sub("", text)
    text = _THOUSANDS.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")
    if _NUMBER.fullmatch(text):
        try:
            value = Decimal(text)
        except InvalidOperation:
            return text or None
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    return text or None


def majority_vote(answers: Sequence[str | None], correct: Sequence[float | bool]) -> tuple[str | None, bool]:
    """Vote over ``answers`` (one extracted answer per sample, ``None`` for none) -> (voted key, correct).

    Answers are grouped by ``normalize_answer``; samples without an answer do not vote. The most
    frequent group wins; a tie goes to the group whose first member comes first. The vote is correct
    iff the first sample of the winning group was judged correct (``correct[i]`` truthy). No answer at
    all gives ``(None, False)``.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} verdicts")
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        key = normalize_answer(answer)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None, False
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return best, bool(correct[first[best]])


def score_problems(extracted: Sequence[Sequence[str | None]], scores: Sequence[Sequence[float]], k: int) -> dict:
    """pass@1, pass@k and maj@k over problems, given each problem's n extracted answers and 0/1 scores."""
    if not scores:
        raise ValueError("no problems to score")
    p1, pk, mk = [], [], []
    for answers, score in zip(extracted, scores, strict=True):
        n, c = len(score), sum(1 for s in score if s > 0)
        p1.append(c / n)
        pk.append(pass_at_k(n, c, k))
        mk.append(float(majority_vote(list(answers)[:k], list(score)[:k])[1]))
    count = len(scores)
    return {"pass@1": sum(p1) / count, "pass@k": sum(pk) / count, "maj@k": sum(mk) / count}


# ------------------------------------------------------------------------------------------ running


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


def _load_problems(cfg: EvalConfig) -> list[dict]:
    from rlvr.data import load_problems

    data = cfg.data
    try:
        problems = load_problems(data.path, prompt_key=data.prompt_key, answer_key=data.answer_key,
                                 format=data.format, on_bad_row=data.on_bad_row, limit=data.limit,
                                 split=data.split, subset=data.subset)
    except (FileNotFoundError, ValueError) as err:
        raise EvalError(str(err).splitlines()[0]) from None
    if not problems:
        raise EvalError(f"no problems in {data.path}")
    return problems


def _default_output_dir(model: str) -> str:
    path = Path(model.rstrip("/"))
    if path.name == "hf":  # a checkpoint's export: name it after checkpoints/step_N
        path = path.parent
    name = re.sub(r"[^\w.-]+", "_", path.name or "model")
    return str(Path("outputs") / "eval" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


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


def _config_dict(cfg: EvalConfig) -> dict:
    from dataclasses import asdict

    return asdict(cfg)


def _coerce(cfg: Any) -> EvalConfig:
    if isinstance(cfg, EvalConfig):
        validate(cfg)
        return cfg
    from omegaconf import DictConfig

    if isinstance(cfg, (dict, DictConfig)):
        return build_config(lambda: cfg)
    raise TypeError(f"evaluate_model takes an EvalConfig, a dict or a DictConfig, got {type(cfg).__name__}")


def evaluate_model(cfg: EvalConfig | dict) -> dict:
    """Generate, verify and score; write eval.json and samples.jsonl; return eval.json's content.

    Raises ``EvalError`` for user errors (bad settings, missing model or data)."""
    started = time.perf_counter()
    cfg = _coerce(cfg)
    model_dir = resolve_model_dir(cfg.model)
    problems = _load_problems(cfg)
    out_dir = Path(cfg.output_dir or _default_output_dir(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)

    threads = _set_engine_env(cfg)
    from rlvr.rollout.engine import VLLMEngine

    tmp = Path(os.environ["TMPDIR"])
    before = set(tmp.glob("vllm_dist_*"))
    engine = VLLMEngine(model_dir, seed=cfg.seed, dtype=cfg.dtype, max_model_len=cfg.max_model_len,
                        kv_cache_gb=cfg.kv_cache_gb, threads=threads)
    ours = set(tmp.glob("vllm_dist_*")) - before  # vLLM's rendezvous file, never removed by vLLM
    try:
        return _run(cfg, engine, model_dir, problems, out_dir, started)
    finally:
        for path in ours:
            path.unlink(missing_ok=True)


def _run(cfg: EvalConfig, engine, model_dir: str, problems: list[dict], out_dir: Path, started: float) -> dict:
    from rlvr.orchestrator.steps import tokenize_prompts
    from rlvr.verifier import make_verifier

    try:
        prompt_ids = tokenize_prompts(engine.tokenizer, problems, vars(cfg.data))  # template, system, instruction
    except ValueError as err:  # e.g. the chat template on a tokenizer without one
        raise EvalError(str(err).splitlines()[0]) from None
    greedy = cfg.temperature == 0
    gen_start = time.perf_counter()
    # per-prompt seeds (the engine derives them from `seed`): a problem's samples do not depend on
    # which other problems are in the batch, so data.limit=N reproduces the first N problems' samples
    samples = engine.generate(prompt_ids, n=cfg.n, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                              top_p=cfg.top_p, stop=list(cfg.stop), seed=cfg.seed)
    generate_s = time.perf_counter() - gen_start
    per_problem: list[list] = [[] for _ in problems]
    for sample in samples:
        per_problem[sample.prompt_index].append(sample)
    for i, group in enumerate(per_problem):
        expected = 1 if greedy else cfg.n
        if len(group) != expected:
            raise RuntimeError(f"problem {i}: the engine returned {len(group)} samples, expected {expected}")
        if greedy:  # one deterministic generation stands for all n samples
            group *= cfg.n

    flat = [(i, j, s) for i, group in enumerate(per_problem) for j, s in enumerate(group)]
    verify_start = time.perf_counter()
    v = cfg.verifier
    with make_verifier(mode=v.mode, workers=v.workers, timeout_s=v.timeout_s, max_chars=v.max_chars,
                       memory_mb=v.memory_mb, strict=v.strict, answer_format=v.answer_format, url=v.url,
                       token=v.token) as verifier:
        results = verifier.verify([s.text for _, _, s in flat], [problems[i]["answer"] for i, _, _ in flat])
    verify_s = time.perf_counter() - verify_start

    extracted = [[None] * cfg.n for _ in problems]
    scores = [[0.0] * cfg.n for _ in problems]
    with open(out_dir / "samples.jsonl", "w") as fh:
        for (i, j, s), res in zip(flat, results):
            extracted[i][j], scores[i][j] = res.extracted, float(res.score)
            fh.write(json.dumps({"problem": i, "sample": j, "prompt": problems[i]["prompt"], "response": s.text,
                                 "gold": problems[i]["answer"], "extracted": res.extracted, "reason": res.reason,
                                 "score": float(res.score), "finish_reason": s.finish_reason,
                                 "num_tokens": len(s.token_ids)}) + "\n")
    metrics = score_problems(extracted, scores, cfg.k)
    reasons = [r.reason for r in results]
    report = {
        **metrics,
        f"pass@{cfg.k}": metrics["pass@k"],
        f"maj@{cfg.k}": metrics["maj@k"],
        "k": cfg.k, "n": cfg.n, "n_problems": len(problems), "n_samples": len(flat),
        "model": model_dir, "data": str(cfg.data.path), "temperature": cfg.temperature, "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens, "seed": cfg.seed, "greedy": greedy,
        "reasons": {r: reasons.count(r) for r in sorted(set(reasons))},
        "mean_response_tokens": sum(len(s.token_ids) for _, _, s in flat) / len(flat),
        "truncated_frac": sum(s.finish_reason == "length" for _, _, s in flat) / len(flat),
        "generate_s": generate_s, "verify_s": verify_s,
        "seconds": time.perf_counter() - started,
        "config": _config_dict(cfg),
    }
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    report["output_dir"] = str(out_dir)
    return report


# ---------------------------------------------------------------------------------------------- CLI


def eval_main(argv: list[str]) -> int:
    """`rlvr eval key=value ...`; 0 on success, 2 on a user error (one line on stderr)."""
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        cfg = parse_overrides(argv)
        report = evaluate_model(cfg)
    except EvalError as err:
        print(f"rlvr eval: {err}", file=sys.stderr)
        return 2
    k = report["k"]
    print(f"rlvr eval: {report['n_problems']} problems x {report['n']} samples: pass@1={report['pass@1']:.4f} "
          f"pass@{k}={report['pass@k']:.4f} maj@{k}={report['maj@k']:.4f} ({report['seconds']:.1f}s) "
          f"-> {report['output_dir']}")
    return 0

"""`rlvr eval`: pass@1, pass@k and maj@k of a model (or a run's checkpoint) on a problem file.

    rlvr eval model=PATH data.path=FILE [output_dir=DIR] [k=4] [n=K] [temperature=0.6] [max_tokens=1024]
              [data.prompt_key=... data.answer_key=... data.format=auto|gsm8k|math|plain
               data.template=plain|boxed_instruction|chat data.limit=N] [seed=0]
              [verifier.timeout_s=5 verifier.workers=2]

Every argument is a ``key=value`` override (OmegaConf dotlist) of ``EvalConfig``; an unknown key or a
value of the wrong type is refused with one line naming the key. ``data`` and ``verifier`` are the
blocks of `rlvr train` (``data.path`` is ``data.eval_path``, ``data.split`` is ``data.eval_split``,
``data.limit`` is ``limit``). For each problem ``n`` samples are drawn (``n`` defaults to ``k``;
``n >= k``) and verified against the gold answer:

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
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlvr.evaluation.config import EvalConfig, EvalError, build_config, parse_overrides, validate
from rlvr.evaluation.core import EngineRollouts, generate_sorted, verify_samples
from rlvr.evaluation.inputs import (
    default_output_dir,
    load_eval_problems,
    open_engine,
    resolve_model_dir,
    tokenize_or_fail,
)
from rlvr.evaluation.metrics import score_problems


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
    problems = load_eval_problems(cfg, model_dir)
    out_dir = Path(cfg.output_dir or default_output_dir(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_engine(cfg, model_dir) as engine:
        return _run(cfg, engine, model_dir, problems, out_dir, started)


def _sample_and_verify(cfg: EvalConfig, engine, problems: list[dict]) -> tuple[list, list, float, float]:
    """(flat ``(problem, sample index, sample)`` triples, their results, generate s, verify s)."""
    from rlvr.verifier import make_verifier_from_config

    prompt_ids = tokenize_or_fail(engine.tokenizer, problems, cfg.data)  # template, system, instruction
    greedy = cfg.temperature == 0
    # per-prompt seeds (the engine derives them from `seed`): a problem's samples do not depend on
    # which other problems are in the batch, so limit=N reproduces the first N problems' samples
    params = dict(n=cfg.n, temperature=cfg.temperature, max_tokens=cfg.max_tokens, top_p=cfg.top_p,
                  stop=list(cfg.stop), seed=cfg.seed)
    samples, generate_s = generate_sorted(EngineRollouts(engine), prompt_ids, params)
    per_problem: list[list] = [[] for _ in problems]
    for sample in samples:
        per_problem[sample.prompt_index].append(sample)
    expected = 1 if greedy else cfg.n
    for i, group in enumerate(per_problem):
        if len(group) != expected:
            raise RuntimeError(f"problem {i}: the engine returned {len(group)} samples, expected {expected}")
    with make_verifier_from_config(cfg.verifier) as verifier:
        results, verify_s = verify_samples(verifier, problems, samples)
    if greedy:  # one deterministic generation (and its verdict) stands for all n samples
        per_problem = [group * cfg.n for group in per_problem]
        results = [r for r in results for _ in range(cfg.n)]
    flat = [(i, j, s) for i, group in enumerate(per_problem) for j, s in enumerate(group)]
    return flat, results, generate_s, verify_s


def _run(cfg: EvalConfig, engine, model_dir: str, problems: list[dict], out_dir: Path, started: float) -> dict:
    flat, results, generate_s, verify_s = _sample_and_verify(cfg, engine, problems)
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
        "model": model_dir, "data": str(cfg.data.eval_path), "temperature": cfg.temperature, "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens, "seed": cfg.seed, "greedy": cfg.temperature == 0,
        "reasons": {r: reasons.count(r) for r in sorted(set(reasons))},
        "mean_response_tokens": sum(len(s.token_ids) for _, _, s in flat) / len(flat),
        "truncated_frac": sum(s.finish_reason == "length" for _, _, s in flat) / len(flat),
        "generate_s": generate_s, "verify_s": verify_s,
        "seconds": time.perf_counter() - started,
        "config": asdict(cfg),
    }
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    report["output_dir"] = str(out_dir)
    return report


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

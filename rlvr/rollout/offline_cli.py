"""`rlvr rollout`: sample a model on a problem file and log the samples for offline training.

    rlvr rollout model=PATH data.path=FILE [output_dir=DIR] [n=4] [temperature=1.0] [max_tokens=1024]
                 [top_p=1.0] [seed=0] [data.* verifier.* dtype=... as for `rlvr eval`]

Same ``key=value`` settings as ``rlvr eval`` (model resolution, the ``data`` and ``verifier`` blocks of
`rlvr train`), except that ``n`` (samples per problem, default 4) replaces ``k`` and ``temperature``
defaults to 1.0 and must be > 0: the logged log-probs must be those of a sampling distribution. Writes
``<output_dir>/rollouts.parquet``, one row per sample (columns in ``SCHEMA``), and ``rollout.json``
(settings, counts, accuracy, timings). ``version`` is the weight version that sampled: 0 for a base
model, N for a run's ``checkpoints/step_N``.

``rlvr train rollout.source=offline rollout.offline_path=FILE_OR_DIR algorithm=pg`` trains on such
files (see ``rlvr.rollout.offline.OfflineSource``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rlvr.evaluation.config import EvalConfig, EvalError, build_config, check_dotlist
from rlvr.rollout.offline import FILE_NAME, META_KEY, SCHEMA, OfflineError

ROLLOUT_DEFAULTS = {"k": 1, "n": 4, "temperature": 1.0}
CHUNK_PROMPTS = 1024  # problems per engine call: bounds memory on large files, keeps vLLM's batches full


def rollout_main(argv: list[str]) -> int:
    """`rlvr rollout key=value ...`; 0 on success, 2 on a user error (one line on stderr)."""
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        report = run_rollout(parse_rollout_args(argv))
    except (EvalError, OfflineError) as err:
        print(f"rlvr rollout: {err}", file=sys.stderr)
        return 2
    print(f"rlvr rollout: {report['n_problems']} problems x {report['n']} samples, accuracy "
          f"{report['accuracy']:.4f}, weight version {report['version']} ({report['seconds']:.1f}s) "
          f"-> {Path(report['output_dir']) / FILE_NAME}")
    return 0


def parse_rollout_args(argv: list[str]) -> EvalConfig:
    """``key=value`` strings -> a validated ``EvalConfig`` with rollout defaults (n=4, temperature=1)."""
    from omegaconf import OmegaConf

    check_dotlist(argv, "rlvr rollout")
    for arg in argv:
        if arg.split("=", 1)[0] == "k":
            raise EvalError("k is an eval setting; rollout takes n=N (samples per problem)")
    cfg = build_config(lambda: OmegaConf.merge(OmegaConf.create(ROLLOUT_DEFAULTS), OmegaConf.from_dotlist(argv)))
    if cfg.temperature <= 0:
        raise EvalError(f"temperature must be > 0 for rollouts (greedy log-probs are no behaviour policy), "
                        f"got {cfg.temperature}")
    return cfg


def weight_version(model_dir: str) -> int:
    """N for a run's ``checkpoints/step_N/hf`` export, else 0 (a base model)."""
    path = Path(model_dir)
    found = re.fullmatch(r"step_(\d+)", path.parent.name if path.name == "hf" else path.name)
    return int(found.group(1)) if found else 0


def run_rollout(cfg: EvalConfig) -> dict:
    """Sample, verify, write rollouts.parquet and rollout.json; return rollout.json's content."""
    from rlvr.evaluation.inputs import default_output_dir, load_eval_problems, open_engine, resolve_model_dir

    started = time.perf_counter()
    model_dir = resolve_model_dir(cfg.model)
    problems = load_eval_problems(cfg, model_dir, command="rlvr rollout")  # long prompts dropped
    out_dir = Path(cfg.output_dir or default_output_dir(model_dir, "rollout"))
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"model": model_dir, "version": weight_version(model_dir), "data": str(cfg.data.eval_path),
                "template": cfg.data.template, "n": cfg.n, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "max_tokens": cfg.max_tokens, "seed": cfg.seed, "n_problems": len(problems)}
    with open_engine(cfg, model_dir) as engine:
        stats = _sample_to_parquet(cfg, engine, problems, out_dir / FILE_NAME, settings)
    meta = {**settings, **stats, "seconds": time.perf_counter() - started, "file": FILE_NAME,
            "columns": SCHEMA.names}
    (out_dir / "rollout.json").write_text(json.dumps(meta, indent=2) + "\n")
    return dict(meta, output_dir=str(out_dir))


def _sample_to_parquet(cfg: EvalConfig, engine, problems: list[dict], path: Path, settings: dict) -> dict:
    """Problems in chunks of ``CHUNK_PROMPTS`` (memory stays bounded on large files), each sampled,
    verified and appended to the parquet file; returns counts and timings."""
    from rlvr.evaluation.inputs import tokenize_or_fail
    from rlvr.verifier import make_verifier_from_config

    prompt_ids = tokenize_or_fail(engine.tokenizer, problems, cfg.data)  # template, system, instruction
    stats = {"n_samples": 0, "correct": 0, "tokens": 0, "truncated": 0, "generate_s": 0.0, "verify_s": 0.0}
    reasons: dict[str, int] = {}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with make_verifier_from_config(cfg.verifier) as verifier, \
            pq.ParquetWriter(tmp, SCHEMA.with_metadata({META_KEY: json.dumps(settings)})) as writer:
        for lo in range(0, len(problems), CHUNK_PROMPTS):
            rows = _sample_chunk(cfg, engine, verifier, problems, prompt_ids, lo, settings["version"], stats)
            writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
            for r in rows:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
                stats["correct"] += r["correct"]
                stats["tokens"] += len(r["response_ids"])
                stats["truncated"] += r["finish_reason"] == "length"
            stats["n_samples"] += len(rows)
    os.replace(tmp, path)  # a reader never sees a half-written file
    count = stats["n_samples"]
    return {"n_samples": count, "accuracy": stats["correct"] / count, "reasons": dict(sorted(reasons.items())),
            "mean_response_tokens": stats["tokens"] / count, "truncated_frac": stats["truncated"] / count,
            "generate_s": stats["generate_s"], "verify_s": stats["verify_s"],
            "tokens_per_s": stats["tokens"] / max(stats["generate_s"], 1e-9)}


def _sample_chunk(cfg: EvalConfig, engine, verifier, problems, prompt_ids, lo: int, version: int,
                  stats: dict) -> list[dict]:
    """The rows of problems ``lo .. lo + CHUNK_PROMPTS``, sampled and verified by the evaluator's core."""
    from rlvr.evaluation.core import EngineRollouts, generate_sorted, verify_samples
    from rlvr.rollout.engine import PROMPT_SEED_STRIDE

    ids, chunk = prompt_ids[lo:lo + CHUNK_PROMPTS], problems[lo:lo + CHUNK_PROMPTS]
    # the engine seeds prompt i of a call with seed + STRIDE * i: offset by the chunk's start, so a
    # problem's samples depend on its index in the file alone, not on the chunking
    params = dict(n=cfg.n, temperature=cfg.temperature, max_tokens=cfg.max_tokens, top_p=cfg.top_p,
                  stop=list(cfg.stop), seed=cfg.seed + PROMPT_SEED_STRIDE * lo)
    samples, generate_s = generate_sorted(EngineRollouts(engine), ids, params)
    stats["generate_s"] += generate_s
    counts = [0] * len(ids)
    for s in samples:
        counts[s.prompt_index] += 1
    if any(c != cfg.n for c in counts):
        raise RuntimeError(f"the engine returned {counts} samples per problem, expected {cfg.n} each")
    results, verify_s = verify_samples(verifier, chunk, samples)
    stats["verify_s"] += verify_s
    rows = []
    for k, (s, res) in enumerate(zip(samples, results)):
        p = lo + s.prompt_index
        rows.append({"prompt_index": p, "sample_index": k % cfg.n, "prompt": problems[p]["prompt"],
                     "prompt_ids": prompt_ids[p], "response": s.text, "response_ids": s.token_ids,
                     "logprobs": s.logprobs, "finish_reason": s.finish_reason, "reward": float(res.score),
                     "correct": res.reason == "correct", "reason": res.reason, "extracted": res.extracted,
                     "gold": problems[p]["answer"], "version": version})
    return rows

"""Offline samples in and out: `rlvr rollout` writes them, `rollout.source=offline` trains on them.

    rlvr rollout model=PATH data.path=FILE [output_dir=DIR] [n=4] [temperature=1.0] [max_tokens=1024]
                 [top_p=1.0] [seed=0] [data.* verifier.* dtype=... as for `rlvr eval`]

Same ``key=value`` settings as ``rlvr eval`` (model resolution, data formats, verifier block), except
that ``n`` (samples per problem, default 4) replaces ``k`` and ``temperature`` defaults to 1.0 and must
be > 0: the logged log-probs must be those of a sampling distribution. Writes
``<output_dir>/rollouts.parquet``, one row per sample (columns in ``SCHEMA``), and ``rollout.json``
(settings, counts, accuracy, timings). ``version`` is the weight version that sampled: 0 for a base
model, N for a run's ``checkpoints/step_N``.

``rlvr train rollout.source=offline rollout.offline_path=FILE_OR_DIR algorithm=pg`` trains on such
files: ``OfflineSource`` hands the loop ``data.prompts_per_step`` groups per step (a group is every row
of one prompt, whatever n was used), shuffled per epoch with the run seed. Their log-probs are mu, so
the ``pg`` objective's importance weight is pi_theta / mu against the logged behaviour policy.
Rewards are recomputed from the logged verdicts with the run's ``algorithm.reward`` (and overlong
shaping), so one file serves every reward setting.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FILE_NAME = "rollouts.parquet"
META_KEY = b"rlvr.rollout"  # the sampling settings (model, version, n, temperature, ...) in the schema metadata

SCHEMA = pa.schema([
    ("prompt_index", pa.int64()),        # position of the problem in the data file
    ("sample_index", pa.int64()),        # 0..n-1 within the problem
    ("prompt", pa.string()),             # the problem text (before the prompt template)
    ("prompt_ids", pa.list_(pa.int64())),  # the templated prompt as the model saw it
    ("response", pa.string()),
    ("response_ids", pa.list_(pa.int64())),
    ("logprobs", pa.list_(pa.float32())),  # mu: the sampler's log-prob of each response token
    ("finish_reason", pa.string()),      # stop | length
    ("reward", pa.float64()),            # the verifier's score (1 correct, else 0)
    ("correct", pa.bool_()),
    ("reason", pa.string()),             # correct | wrong | no_answer | timeout | too_long | error
    ("extracted", pa.string()),          # the answer found in the response (null: none)
    ("gold", pa.string()),
    ("version", pa.int64()),             # weight version that sampled
])
# what training reads; the other columns are for people and other tools
REQUIRED = ("prompt_index", "prompt", "prompt_ids", "response", "response_ids", "logprobs", "finish_reason",
            "reason", "gold", "version")
OPTIONAL = ("sample_index", "extracted")
ROLLOUT_DEFAULTS = {"k": 1, "n": 4, "temperature": 1.0}
CHUNK_PROMPTS = 1024  # problems per engine call: bounds memory on large files, keeps vLLM's batches full


class OfflineError(ValueError):
    """A bad offline file or setting; the message names the file and the column."""


# ---------------------------------------------------------------------------------------- writing


def rollout_main(argv: list[str]) -> int:
    """`rlvr rollout key=value ...`; 0 on success, 2 on a user error (one line on stderr)."""
    from rlvr.evaluation import EvalError

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


def parse_rollout_args(argv: list[str]):
    """``key=value`` strings -> a validated ``EvalConfig`` with rollout defaults (n=4, temperature=1)."""
    from omegaconf import OmegaConf

    from rlvr.evaluation import EvalError, build_config

    for arg in argv:
        if "=" not in arg or arg.startswith("="):
            raise EvalError(f"expected key=value, got {arg!r} (see `rlvr rollout --help`)")
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


def run_rollout(cfg) -> dict:
    """Sample, verify, write rollouts.parquet and rollout.json; return rollout.json's content."""
    from rlvr.evaluation import _default_output_dir, _load_problems, _set_engine_env, resolve_model_dir

    started = time.perf_counter()
    model_dir = resolve_model_dir(cfg.model)
    problems = _load_problems(cfg)
    out_dir = Path(cfg.output_dir or Path("outputs", "rollout", Path(_default_output_dir(model_dir)).name))
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"model": model_dir, "version": weight_version(model_dir), "data": str(cfg.data.path),
                "template": cfg.data.template, "n": cfg.n, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "max_tokens": cfg.max_tokens, "seed": cfg.seed, "n_problems": len(problems)}
    threads = _set_engine_env(cfg)
    from rlvr.rollout.engine import VLLMEngine

    tmp = Path(os.environ["TMPDIR"])
    before = set(tmp.glob("vllm_dist_*"))
    engine = VLLMEngine(model_dir, seed=cfg.seed, dtype=cfg.dtype, max_model_len=cfg.max_model_len,
                        kv_cache_gb=cfg.kv_cache_gb, threads=threads)
    ours = set(tmp.glob("vllm_dist_*")) - before  # vLLM's rendezvous file, never removed by vLLM
    try:
        stats = _sample_to_parquet(cfg, engine, problems, out_dir / FILE_NAME, settings)
    finally:
        for path in ours:
            path.unlink(missing_ok=True)
    meta = {**settings, **stats, "seconds": time.perf_counter() - started, "file": FILE_NAME,
            "columns": SCHEMA.names}
    (out_dir / "rollout.json").write_text(json.dumps(meta, indent=2) + "\n")
    return dict(meta, output_dir=str(out_dir))


def _sample_to_parquet(cfg, engine, problems: list[dict], path: Path, settings: dict) -> dict:
    """Problems in chunks of ``CHUNK_PROMPTS`` (memory stays bounded on large files), each sampled,
    verified and appended to the parquet file; returns counts and timings."""
    from rlvr.evaluation import EvalError
    from rlvr.orchestrator.steps import tokenize_prompts
    from rlvr.verifier import make_verifier

    try:
        prompt_ids = tokenize_prompts(engine.tokenizer, problems, vars(cfg.data))  # template, system, instruction
    except ValueError as err:  # e.g. the chat template on a tokenizer without one
        raise EvalError(str(err).splitlines()[0]) from None
    stats = {"n_samples": 0, "correct": 0, "tokens": 0, "truncated": 0, "generate_s": 0.0, "verify_s": 0.0}
    reasons: dict[str, int] = {}
    v = cfg.verifier
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with make_verifier(mode=v.mode, workers=v.workers, timeout_s=v.timeout_s, max_chars=v.max_chars,
                       memory_mb=v.memory_mb, strict=v.strict, answer_format=v.answer_format, url=v.url,
                       token=v.token) as verifier, \
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


def _sample_chunk(cfg, engine, verifier, problems, prompt_ids, lo: int, version: int, stats: dict) -> list[dict]:
    from rlvr.rollout.engine import PROMPT_SEED_STRIDE

    ids = prompt_ids[lo:lo + CHUNK_PROMPTS]
    start = time.perf_counter()
    # the engine seeds prompt i of a call with seed + STRIDE * i: offset by the chunk's start, so a
    # problem's samples depend on its index in the file alone, not on the chunking
    samples = engine.generate(ids, n=cfg.n, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                              top_p=cfg.top_p, stop=list(cfg.stop), seed=cfg.seed + PROMPT_SEED_STRIDE * lo)
    stats["generate_s"] += time.perf_counter() - start
    counts = [0] * len(ids)
    for s in samples:
        counts[s.prompt_index] += 1
    if any(c != cfg.n for c in counts):
        raise RuntimeError(f"the engine returned {counts} samples per problem, expected {cfg.n} each")
    samples.sort(key=lambda s: s.prompt_index)  # stable: sample order within a problem is kept
    start = time.perf_counter()
    results = verifier.verify([s.text for s in samples], [problems[lo + s.prompt_index]["answer"] for s in samples])
    stats["verify_s"] += time.perf_counter() - start
    rows = []
    for k, (s, res) in enumerate(zip(samples, results)):
        p = lo + s.prompt_index
        rows.append({"prompt_index": p, "sample_index": k % cfg.n, "prompt": problems[p]["prompt"],
                     "prompt_ids": prompt_ids[p], "response": s.text, "response_ids": s.token_ids,
                     "logprobs": s.logprobs, "finish_reason": s.finish_reason, "reward": float(res.score),
                     "correct": res.reason == "correct", "reason": res.reason, "extracted": res.extracted,
                     "gold": problems[p]["answer"], "version": version})
    return rows


def write_rollouts(path: str | Path, rows: list[dict], meta: dict | None = None) -> None:
    """Rows (dicts with ``SCHEMA``'s keys) as a rollout file, e.g. samples logged by another tool."""
    path = Path(path)
    columns = {name: [r.get(name) for r in rows] for name in SCHEMA.names}
    schema = SCHEMA.with_metadata({META_KEY: json.dumps(meta or {})})
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------- reading


def _is_int(t) -> bool:
    return pa.types.is_integer(t)


def _is_str(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _list_of(check):
    return lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and check(t.value_type)


_KINDS = {"prompt_index": (_is_int, "integer"), "sample_index": (_is_int, "integer"),
          "version": (_is_int, "integer"), "prompt_ids": (_list_of(_is_int), "list of integers"),
          "response_ids": (_list_of(_is_int), "list of integers"),
          "logprobs": (_list_of(pa.types.is_floating), "list of floats")}


def rollout_files(path: str | Path) -> list[Path]:
    """The parquet file ``path``, or every ``*.parquet`` in the directory ``path`` (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.parquet"))
        if not files:
            raise OfflineError(f"{p}: no .parquet files in this directory")
        return files
    if not p.is_file():
        raise OfflineError(f"{p}: file not found")
    return [p]


def read_rollouts(path: str | Path) -> tuple[pa.Table, list[tuple[str, int, np.ndarray]], dict]:
    """(table of the columns training reads, groups, metadata of the first file). A group is
    ``(file, prompt_index, row indices in table)``: all rows of one prompt, by sample_index."""
    tables, groups, offset, meta = [], [], 0, {}
    for file in rollout_files(path):
        table, file_meta = _read_one(file)
        meta = meta or file_meta
        prompt, sample = table.column("prompt_index").to_numpy(), table.column("sample_index").to_numpy()
        order = np.lexsort((sample, prompt))
        bounds = np.flatnonzero(np.diff(prompt[order])) + 1
        groups += [(str(file), int(prompt[rows[0]]), rows + offset) for rows in np.split(order, bounds)]
        tables.append(table)
        offset += len(table)
    return pa.concat_tables(tables), groups, meta


def _read_one(file: Path) -> tuple[pa.Table, dict]:
    """One file, checked and cast to ``SCHEMA``'s types; ``OfflineError`` names the file and column."""
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise OfflineError(f"{file}: not a readable parquet file ({str(err).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise OfflineError(f"{file}: missing column {missing[0]!r} (rows written by `rlvr rollout` have "
                           f"{', '.join(REQUIRED)})")
    if table.num_rows == 0:
        raise OfflineError(f"{file}: no rows")
    # without sample_index, file order within a prompt; without extracted, no answers
    fill = {"sample_index": pa.array(np.arange(table.num_rows)), "extracted": pa.nulls(table.num_rows, pa.string())}
    for name in (*REQUIRED, *OPTIONAL):
        if name not in table.column_names:
            table = table.append_column(SCHEMA.field(name), fill[name])
            continue
        check, kind = _KINDS.get(name, (_is_str, "string"))
        col = table.column(name)
        if not check(col.type):
            raise OfflineError(f"{file}: column {name!r} has type {col.type}, expected {kind}")
        if name != "extracted" and col.null_count:
            raise OfflineError(f"{file}: column {name!r} has {col.null_count} null values")
    _check_rows(file, table)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    schema = pa.schema([SCHEMA.field(c) for c in (*REQUIRED, *OPTIONAL)])
    try:
        return table.select(schema.names).cast(schema), meta
    except pa.ArrowException as err:  # e.g. token ids beyond int64
        raise OfflineError(f"{file}: {str(err).splitlines()[0]}") from None


def _check_rows(file: Path, table: pa.Table) -> None:
    n_lp = pc.list_value_length(table.column("logprobs")).to_numpy(zero_copy_only=False)
    n_ids = pc.list_value_length(table.column("response_ids")).to_numpy(zero_copy_only=False)
    if (bad := np.flatnonzero(n_lp != n_ids)).size:
        i = int(bad[0])
        raise OfflineError(f"{file}: row {i}: column 'logprobs' has {n_lp[i]} values for {n_ids[i]} response_ids")
    values = pc.list_flatten(table.column("logprobs")).to_numpy(zero_copy_only=False).astype(np.float64)
    if values.size and not np.isfinite(values).all():
        raise OfflineError(f"{file}: column 'logprobs' holds non-finite values (NaN/inf)")
    if values.size and values.max() > 1e-4:
        raise OfflineError(f"{file}: column 'logprobs' holds positive values (max {values.max():.3g}): "
                           "not log-probabilities")
    for name in ("prompt_ids", "response_ids"):
        if pc.list_flatten(table.column(name)).null_count:
            raise OfflineError(f"{file}: column {name!r} holds null token ids")
    from rlvr.verifier import REASONS

    known = pc.is_in(table.column("reason"), value_set=pa.array(REASONS))
    if not pc.all(known).as_py():
        i = int(np.flatnonzero(~known.to_numpy(zero_copy_only=False))[0])
        raise OfflineError(f"{file}: row {i}: column 'reason' is {table.column('reason')[i].as_py()!r}, "
                           f"expected one of {', '.join(REASONS)}")


class OfflineSource:
    """The loop's groups when ``rollout.source=offline``: ``data.prompts_per_step`` prompts of the file per
    step, each with all of its logged samples; epochs in an order fixed by (seed, epoch)."""

    def __init__(self, cfg: dict, run=None):
        from rlvr.data import PromptSampler
        from rlvr.orchestrator.setup import reward_config

        self.path = str(cfg["rollout"]["offline_path"])
        self.table, self.groups, self.meta = read_rollouts(self.path)
        per_step = cfg["data"]["prompts_per_step"]
        if per_step > len(self.groups):  # a step would hold one prompt twice
            raise OfflineError(f"data.prompts_per_step={per_step} exceeds the {len(self.groups)} prompts "
                               f"in rollout.offline_path={self.path}")
        self.seed = cfg["seed"]
        self.sampler = PromptSampler(list(range(len(self.groups))), per_step, self.seed)
        self.reward_cfg, self.max_tokens = reward_config(cfg), cfg["rollout"]["max_tokens"]
        self.vocab_size = _vocab_size(run)
        log = run.log if run is not None else print
        log(f"offline: {self.table.num_rows} samples of {len(self.groups)} prompts from {self.path}; "
            f"{per_step} prompts per step, {math.ceil(len(self.groups) / per_step)} steps per epoch")
        sampled_at = self.meta.get("temperature")
        if sampled_at is not None and sampled_at != cfg["rollout"]["temperature"]:
            # still a valid importance weight (mu is what sampled), but usually a forgotten override
            log(f"offline: the file was sampled at temperature {sampled_at}; the trainer's pi uses "
                f"rollout.temperature={cfg['rollout']['temperature']}")

    def next_groups(self, step: int):
        """(groups, timing and offline metrics, 0 extra rounds): the generating path's triple."""
        start = time.perf_counter()
        epoch = self.sampler.epoch
        groups = [self._group(gid, i) for i, gid in enumerate(self.sampler.next_batch())]
        self._set_rewards(groups)
        versions = [s.version for g in groups for s in g.samples]
        return groups, {"perf/generate_s": 0.0, "perf/verify_s": 0.0,
                        "perf/offline_read_s": time.perf_counter() - start, "offline/epoch": epoch,
                        "offline/version_mean": sum(versions) / len(versions)}, 0

    def _group(self, gid: int, position: int):
        from rlvr.orchestrator.steps import Group
        from rlvr.rollout.engine import Sample
        from rlvr.verifier import VerifyResult

        file, prompt_index, rows = self.groups[gid]
        records = self.table.take(pa.array(rows)).to_pylist()
        first = records[0]
        if any(r["prompt_ids"] != first["prompt_ids"] for r in records):
            raise OfflineError(f"{file}: prompt_index {prompt_index}: its rows disagree on column 'prompt_ids'")
        top = max(max(r["response_ids"] + r["prompt_ids"], default=0) for r in records)
        if self.vocab_size is not None and top >= self.vocab_size:
            raise OfflineError(f"{file}: prompt_index {prompt_index}: token id {top} is outside the model's "
                               f"vocabulary ({self.vocab_size}): were these samples drawn from another model?")
        samples = [Sample(position, r["response_ids"], r["logprobs"], r["response"], r["finish_reason"], r["version"])
                   for r in records]
        results = [VerifyResult(0.0, r["reason"], r["extracted"]) for r in records]
        problem = {"prompt": first["prompt"], "answer": first["gold"], "offline_file": file,
                   "offline_prompt_index": prompt_index}
        return Group(problem=problem, prompt_ids=first["prompt_ids"], samples=samples, results=results)

    def _set_rewards(self, groups: list) -> None:
        """The run's reward from the logged verdicts (as `generate_and_score` computes it)."""
        import torch

        from rlvr.verifier import compute_rewards

        flat = [s for g in groups for s in g.samples]
        results = [r for g in groups for r in g.results]
        rc = self.reward_cfg
        rewards = compute_rewards(results, [s.text for s in flat], kind=rc["kind"],
                                  format_weight=rc["format_weight"], custom=rc["custom"])
        if (rc.get("overlong") or {}).get("enabled"):
            from rlvr.algorithms import overlong_penalty
            from rlvr.config import overlong_cache_len

            lengths = torch.tensor([len(s.token_ids) for s in flat], dtype=torch.float32)
            penalty = overlong_penalty(lengths, self.max_tokens, overlong_cache_len(rc["overlong"], self.max_tokens))
            rewards = [r + p for r, p in zip(rewards, penalty.tolist())]
        it = iter(rewards)
        for g in groups:
            g.rewards = [float(next(it)) for _ in g.samples]

    def state_dict(self) -> dict:
        """Where the next step starts; the order of every epoch follows from (seed, epoch) alone."""
        return {**self.sampler.state_dict(), "seed": self.seed, "prompts": len(self.groups),
                "samples": self.table.num_rows}

    def load_state_dict(self, state: dict) -> None:
        for key, have in (("prompts", len(self.groups)), ("samples", self.table.num_rows), ("seed", self.seed)):
            if state.get(key) != have:
                raise OfflineError(f"offline state is for {key}={state.get(key)}, but this run has {key}={have} "
                                   f"(rollout.offline_path={self.path}, seed): resume with the same file and seed")
        self.sampler.load_state_dict(state)


def _vocab_size(run) -> int | None:
    """The model's vocabulary (embedding rows), to catch samples drawn with another tokenizer."""
    config = Path(getattr(run, "model_dir", None) or "/nonexistent", "config.json")
    if not config.is_file():
        return None
    size = json.loads(config.read_text()).get("vocab_size")
    return int(size) if size else None

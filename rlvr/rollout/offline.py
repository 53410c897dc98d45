"""Offline samples: the rollout file format (written by `rlvr rollout`, see ``offline_cli``), reading
it back with one clear error per kind of bad file, and ``OfflineSource``, the loop's groups when
``rollout.source=offline``.

``rlvr train rollout.source=offline rollout.offline_path=FILE_OR_DIR algorithm=pg`` trains on such
files: ``OfflineSource`` hands the loop ``data.prompts_per_step`` groups per step (a group is every row
of one prompt, whatever n was used), shuffled per epoch with the run seed. Their log-probs are mu, so
the ``pg`` objective's importance weight is pi_theta / mu against the logged behaviour policy.
Rewards are recomputed from the logged verdicts with the run's ``algorithm.reward`` (and overlong
shaping) by ``rlvr.verifier.shaped_rewards``, as for generated samples, so one file serves every
reward setting.
"""

from __future__ import annotations

import json
import math
import os
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


class OfflineError(ValueError):
    """A bad offline file or setting; the message names the file and the column."""


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
    step, each with all of its logged samples; epochs in an order fixed by (seed, epoch). ``cfg`` is the
    run's typed ``Config``; ``run`` (optional) gives ``model_dir`` and ``log``."""

    def __init__(self, cfg, run=None):
        from rlvr.data import PromptSampler
        from rlvr.verifier import reward_settings

        self.path = str(cfg.rollout.offline_path)
        self.table, self.groups, self.meta = read_rollouts(self.path)
        per_step = cfg.data.prompts_per_step
        if per_step > len(self.groups):  # a step would hold one prompt twice
            raise OfflineError(f"data.prompts_per_step={per_step} exceeds the {len(self.groups)} prompts "
                               f"in rollout.offline_path={self.path}")
        self.seed = cfg.seed
        self.sampler = PromptSampler(list(range(len(self.groups))), per_step, self.seed)
        self.reward_settings = reward_settings(cfg)
        self.vocab_size = _vocab_size(run)
        log = run.log if run is not None else print
        log(f"offline: {self.table.num_rows} samples of {len(self.groups)} prompts from {self.path}; "
            f"{per_step} prompts per step, {math.ceil(len(self.groups) / per_step)} steps per epoch")
        sampled_at = self.meta.get("temperature")
        if sampled_at is not None and sampled_at != cfg.rollout.temperature:
            # still a valid importance weight (mu is what sampled), but usually a forgotten override
            log(f"offline: the file was sampled at temperature {sampled_at}; the trainer's pi uses "
                f"rollout.temperature={cfg.rollout.temperature}")

    def next_groups(self, step: int):
        """(groups, timing and offline metrics, 0 extra rounds): the generating path's triple."""
        start = time.perf_counter()
        epoch = self.sampler.epoch
        groups = [self._group(gid, i) for i, gid in enumerate(self.sampler.next_batch())]
        reward_metrics = self._set_rewards(groups)
        versions = [s.version for g in groups for s in g.samples]
        return groups, {"perf/generate_s": 0.0, "perf/verify_s": 0.0,
                        "perf/offline_read_s": time.perf_counter() - start, "offline/epoch": epoch,
                        "offline/version_mean": sum(versions) / len(versions), **reward_metrics}, 0

    def _group(self, gid: int, position: int):
        from rlvr.rollout.samples import Group, Sample
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

    def _set_rewards(self, groups: list) -> dict:
        """The run's reward from the logged verdicts (``shaped_rewards``, as for generated samples); returns
        each custom reward function's mean (``rollout/reward/<name>``). Custom functions get the file's
        ``prompt`` column as ``prompts`` and the group's problem fields as columns (``answer``: the logged
        gold; ``offline_file``, ``offline_prompt_index``): other data set columns are not logged."""
        from rlvr.verifier.rewards import part_means, reward_inputs, shaped_score

        flat = [(g, s) for g in groups for s in g.samples]
        results = [r for g in groups for r in g.results]
        custom = self.reward_settings["kind"] == "custom"
        inputs = reward_inputs([g.problem for g, _ in flat], None, [s.token_ids for _, s in flat]) if custom else {}
        rewards, parts = shaped_score(results, [s.text for _, s in flat], [len(s.token_ids) for _, s in flat],
                                      **self.reward_settings, **inputs)
        it = iter(rewards)
        for g in groups:
            g.rewards = [next(it) for _ in g.samples]
        return {f"rollout/reward/{name}": mean for name, mean in part_means(parts).items()}

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

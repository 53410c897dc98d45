"""Checkpoints: DeepSpeed state of every rank, the driver's state, and an HF export, written to a
temporary directory, fsynced and renamed into place, so a directory named step_N is always complete (it
also holds a COMPLETE marker); a partial one is never loaded. The last `keep` are kept, and checkpoints
of an abandoned timeline (steps after the one a run resumed from) go before the new one is counted."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from rlvr.rollout.samples import Group, Sample


class CheckpointError(RuntimeError):
    """A checkpoint could not be written; the message names the path and the fix."""


def save_checkpoint(run, trainers, step: int, driver_extra: dict, keep: int = 0, pending: dict | None = None) -> str:
    """`pending`: async mode's batches generated ahead and not trained on yet (by step)."""
    root = run.output_dir / "checkpoints"
    final, tmp = root / f"step_{step}", root / f".step_{step}.tmp"
    driver_state = {"step": step, "sampler": run.sampler.state_dict(), "wandb_run_id": run.tracker.wandb_run_id,
                    **driver_extra}
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        trainers.save_checkpoint(str(tmp / "deepspeed"), tag=f"step_{step}", client_state={"step": step})
        trainers.export_hf(str(tmp / "hf"))
        (tmp / "driver_state.json").write_text(json.dumps(driver_state, indent=2))
        if pending:
            (tmp / "pending_rollouts.json").write_text(json.dumps(pending_to_json(pending)))
        (tmp / "COMPLETE").write_text(str(step))
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        _fsync(root)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"checkpoint step {step}: cannot write {tmp} ({err.strerror or err}); free space or "
                              "make output_dir writable, then resume with resume=auto") from err
    for stale in complete_checkpoints(run.output_dir):  # an abandoned timeline's later steps: never resumed from
        if _step_of(stale) > step:
            shutil.rmtree(stale, ignore_errors=True)
    if keep:
        for old in complete_checkpoints(run.output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return str(final / "hf")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and directory under `root` on disk before the rename publishes it."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync(Path(dirpath, name))
        _fsync(Path(dirpath))


def _step_of(path: Path) -> int:
    return int(path.name.split("_", 1)[1])


def complete_checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints, oldest first. A directory without its marker or state file is skipped."""
    root = Path(output_dir) / "checkpoints"
    found = []
    for d in root.glob("step_*") if root.exists() else []:
        try:
            step = _step_of(d)
            state = json.loads((d / "driver_state.json").read_text())
        except (ValueError, OSError, json.JSONDecodeError):
            continue
        if (d / "COMPLETE").exists() and state.get("step") == step and (d / "deepspeed").is_dir():
            found.append((step, d))
    return [d for _, d in sorted(found)]


def find_resume_checkpoint(resume: str | None, output_dir) -> Path | None:
    """`resume=auto`: the latest complete checkpoint of this run (None if there is none yet);
    `resume=PATH`: that checkpoint directory, which must be complete."""
    if not resume:
        return None
    if resume == "auto":
        found = complete_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if path not in complete_checkpoints(path.parent.parent):
        raise FileNotFoundError(f"resume={resume}: not a complete checkpoint directory (checkpoints/step_N); "
                                "use resume=auto or a checkpoints/step_N directory that holds COMPLETE")
    return path


def load_driver_state(path: Path) -> dict:
    return json.loads((path / "driver_state.json").read_text())


def pending_to_json(pending: dict) -> dict:
    """Async mode's queued batches as plain JSON (floats round-trip exactly; no pickle to trust on load)."""
    return {str(step): {"groups": [dataclasses.asdict(g) for g in groups], "info": info}
            for step, (groups, info) in pending.items()}


def load_pending(path: Path) -> dict:
    """The batches an async run had generated ahead when it saved `path` (empty in sync mode)."""
    from rlvr.verifier import VerifyResult

    file = Path(path) / "pending_rollouts.json"
    if not file.exists():
        return {}
    out = {}
    for step, entry in json.loads(file.read_text()).items():
        groups = [Group(problem=g["problem"], prompt_ids=g["prompt_ids"],
                        samples=[Sample(**s) for s in g["samples"]],
                        results=[VerifyResult(**r) for r in g["results"]], rewards=g["rewards"])
                  for g in entry["groups"]]
        out[int(step)] = (groups, entry["info"])
    return out

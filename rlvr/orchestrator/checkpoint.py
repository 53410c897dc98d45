"""Checkpoints: DeepSpeed state of every rank, the driver's state, and an HF export, written to a
temporary directory and renamed into place, so a directory named step_N is always complete (it also
holds a COMPLETE marker); a partial one is never loaded. The last `keep` are kept."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path


def save_checkpoint(run, trainers, step: int, driver_extra: dict, keep: int = 0, pending: dict | None = None) -> str:
    """`pending`: async mode's batches generated ahead and not trained on yet (by step)."""
    root = run.output_dir / "checkpoints"
    final = root / f"step_{step}"
    tmp = root / f".step_{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    driver_state = {"step": step, "sampler": run.sampler.state_dict(), "wandb_run_id": run.tracker.wandb_run_id,
                    **driver_extra}
    trainers.save_checkpoint(str(tmp / "deepspeed"), tag=f"step_{step}", client_state={"step": step})
    trainers.export_hf(str(tmp / "hf"))
    (tmp / "driver_state.json").write_text(json.dumps(driver_state, indent=2))
    if pending:
        (tmp / "pending_rollouts.pkl").write_bytes(pickle.dumps(pending))
    (tmp / "COMPLETE").write_text(str(step))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if keep:
        for old in complete_checkpoints(run.output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return str(final / "hf")


def complete_checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints, oldest first. A directory without its marker or state file is skipped."""
    root = Path(output_dir) / "checkpoints"
    found = []
    for d in root.glob("step_*") if root.exists() else []:
        try:
            step = int(d.name.split("_", 1)[1])
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
        raise FileNotFoundError(f"resume={resume}: not a complete checkpoint directory (checkpoints/step_N)")
    return path


def load_driver_state(path: Path) -> dict:
    return json.loads((path / "driver_state.json").read_text())


def load_pending(path: Path) -> dict:
    """The batches an async run had generated ahead when it saved `path` (empty in sync mode)."""
    file = Path(path) / "pending_rollouts.pkl"
    return pickle.loads(file.read_bytes()) if file.exists() else {}

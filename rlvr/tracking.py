"""One interface for run logging: JSONL metrics file, W&B, TensorBoard and a console progress bar.

W&B failures (no network, bad key) fall back to offline mode, and then to no W&B at all, without
stopping training.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from tqdm import tqdm

from rlvr.config import WandbConfig

PROGRESS_KEYS = {"rollout/reward_mean": "reward", "rollout/accuracy": "acc", "perf/step_s": "s/step"}


class Tracker:
    def __init__(self, output_dir: str, *, config: dict, backends: list[str], wandb_cfg: WandbConfig,
                 total_steps: int, progress: bool = True, start_step: int = 0, wandb_run_id: str | None = None):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.jsonl = open(self.metrics_path, "a") if "jsonl" in backends else None
        self.wandb = self._init_wandb(config, wandb_cfg, wandb_run_id) if "wandb" in backends else None
        self.tb = self._init_tensorboard() if "tensorboard" in backends else None
        # a live bar on a terminal; in a log file, one plain line every few steps instead of \r spam
        self.bar = tqdm(total=total_steps, initial=start_step, desc="rlvr", dynamic_ncols=True,
                        disable=not (progress and sys.stderr.isatty()))
        self.plain_every = max(1, total_steps // 20) if progress and not sys.stderr.isatty() else 0
        self.total_steps = total_steps

    def _init_wandb(self, config: dict, cfg: WandbConfig, run_id: str | None):
        """`run_id`: the run a resumed job continues (W&B appends to it)."""
        if cfg.mode == "disabled":
            return None
        os.environ.setdefault("WANDB_DIR", str(self.dir))
        os.environ.setdefault("WANDB_CACHE_DIR", str(self.dir / "wandb" / "cache"))
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        kwargs = dict(project=cfg.project, entity=cfg.entity, group=cfg.group, name=cfg.name, tags=list(cfg.tags),
                      config=config, dir=str(self.dir), id=run_id, resume="allow" if run_id else None)
        for mode in dict.fromkeys([cfg.mode, "offline"]):
            try:
                run = wandb.init(mode=mode, **kwargs)
                for prefix in ("rollout", "train", "verify", "perf", "mismatch", "eval"):
                    run.define_metric(f"{prefix}/*", step_metric="step")
                return run
            except Exception as err:  # network, auth, or disk trouble: never stop training for logging
                print(f"tracking: wandb.init(mode={mode}) failed ({err}); falling back")
        return None

    def _init_tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("tracking: tensorboard is not installed (pip install tensorboard) for logger.backends=tensorboard")
            return None
        return SummaryWriter(str(self.dir / "tensorboard"))

    @property
    def wandb_run_id(self) -> str | None:
        return self.wandb.id if self.wandb is not None else None

    def log(self, step: int, metrics: dict) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in sorted(metrics.items())}}
        if self.jsonl:
            self.jsonl.write(json.dumps(record) + "\n")
            self.jsonl.flush()
        if self.wandb is not None:
            try:
                self.wandb.log(record)
            except Exception as err:
                print(f"tracking: wandb.log failed ({err}); continuing without W&B")
                self.wandb = None
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, step)
        shown = {short: f"{metrics[k]:.3g}" for k, short in PROGRESS_KEYS.items() if k in metrics}
        self.bar.update(1)
        self.bar.set_postfix(shown)
        if self.plain_every and (step % self.plain_every == 0 or step == self.total_steps):
            values = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"[rlvr] step {step}/{self.total_steps} {values}", flush=True)

    def log_table(self, step: int, name: str, columns: list[str], rows: list[list]) -> None:
        """A W&B table; with the jsonl backend also one line per row in `completions.jsonl` (for people
        without W&B: `{"step", "table", <column>: value, ...}`)."""
        if self.jsonl:
            with open(self.dir / "completions.jsonl", "a") as f:
                for row in rows:
                    f.write(json.dumps({"step": step, "table": name, **dict(zip(columns, map(_plain, row)))}) + "\n")
        if self.wandb is None:
            return
        import wandb

        try:
            self.wandb.log({name: wandb.Table(columns=columns, data=rows), "step": step})
        except Exception as err:
            print(f"tracking: wandb table failed ({err})")

    def summary(self, values: dict) -> None:
        (self.dir / "summary.json").write_text(json.dumps({k: _plain(v) for k, v in values.items()}, indent=2) + "\n")
        if self.wandb is not None:
            for k, v in values.items():
                self.wandb.summary[k] = _plain(v)

    def close(self) -> None:
        self.bar.close()
        if self.jsonl:
            self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            try:
                self.wandb.finish()
            except Exception as err:
                print(f"tracking: wandb.finish failed ({err})")


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v

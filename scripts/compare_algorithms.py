"""Benchmark: every algorithm preset on the default job, same steps and seed, side by side.

Each preset is one ordinary `rlvr train` run (a subprocess); the script then reads their metrics.jsonl
and summary.json, prints a markdown table (final reward, held-out accuracy, entropy, mismatch, seconds
per step) and writes it with a PNG of the reward curves.

    python scripts/compare_algorithms.py --steps 40 --out runs/compare [--presets grpo,drpo] [overrides...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP: set[str] = set()


def presets() -> list[str]:
    return sorted(p.stem for p in (ROOT / "configs" / "algorithm").glob("*.yaml") if p.stem not in SKIP)


def run_preset(key: str, out: Path, steps: int, seed: int, overrides: list[str]) -> int:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", f"algorithm={key}", f"output_dir={out / key}",
           f"trainer.total_steps={steps}", f"seed={seed}", "logger.wandb.mode=disabled", *overrides]
    print("$", " ".join(cmd[2:]), flush=True)
    with open(out / f"{key}.log", "w") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode


def row(key: str, run_dir: Path) -> dict | None:
    try:
        metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    last = metrics[-5:]

    def mean(k):
        vals = [m[k] for m in last if isinstance(m.get(k), (int, float))]
        return sum(vals) / len(vals) if vals else float("nan")

    return {"preset": key, "reward_first5": sum(m["rollout/reward_mean"] for m in metrics[:5]) / len(metrics[:5]),
            "reward_last5": mean("rollout/reward_mean"), "heldout_before": summary["heldout_accuracy_before"],
            "heldout_after": summary["heldout_accuracy_after"], "entropy": mean("train/entropy"),
            "mismatch": mean("mismatch/abs_diff"), "s_per_step": mean("perf/step_s"),
            "curve": [m["rollout/reward_mean"] for m in metrics]}


def write_outputs(rows: list[dict], out: Path) -> str:
    head = ("| preset | reward first 5 | reward last 5 | held-out before | held-out after | entropy | "
            "mismatch \\|pi_old-mu\\| | s/step |\n|---|---|---|---|---|---|---|---|")
    lines = [head] + [
        f"| {r['preset']} | {r['reward_first5']:.3f} | {r['reward_last5']:.3f} | {r['heldout_before']:.3f} | "
        f"{r['heldout_after']:.3f} | {r['entropy']:.3f} | {r['mismatch']:.1e} | {r['s_per_step']:.2f} |" for r in rows]
    table = "\n".join(lines)
    (out / "compare.md").write_text(table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for r in rows:
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], label=r["preset"], linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("reward mean")
    ax.set_title("rlvr presets on the default job")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reward_curves.png", dpi=120)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--presets", default=None, help="comma-separated keys (default: all)")
    parser.add_argument("--report-only", action="store_true", help="only read finished runs")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = args.presets.split(",") if args.presets else presets()
    for key in keys if not args.report_only else []:
        code = run_preset(key, out, args.steps, args.seed, args.overrides)
        if code:
            print(f"{key}: failed with exit code {code}; see {out / (key + '.log')}")
    rows = [r for key in keys if (r := row(key, out / key))]
    print(write_outputs(rows, out))
    print(f"\nwrote {out / 'compare.md'} and {out / 'reward_curves.png'}")


if __name__ == "__main__":
    main()

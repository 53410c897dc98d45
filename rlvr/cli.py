"""The `rlvr` console script.

    rlvr train [Hydra overrides] [--multirun]   RL training (the default job with no overrides)
    rlvr eval model=PATH data.path=FILE ...      pass@1 / pass@k / maj@k of a checkpoint
    rlvr rollout model=PATH data.path=FILE ...   sample and score, write parquet for offline training
    rlvr prepare-model NAME                      build a model directory once (e.g. smollm2-135m)
    rlvr plot RUN_DIR [--out DIR]               PNG curves from RUN_DIR/metrics.jsonl
    rlvr verify --input IN.jsonl --output OUT.jsonl
    rlvr serve-verifier [--host 127.0.0.1 --port 8008 --token T]
"""

from __future__ import annotations

import os
import sys

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "train":
        return train_main(rest)
    if command == "eval":
        from rlvr.evaluation import eval_main

        return eval_main(rest)
    if command == "rollout":
        from rlvr.rollout.offline_cli import rollout_main

        return rollout_main(rest)
    if command == "prepare-model":
        from rlvr.models.catalog import prepare_model_main

        return prepare_model_main(rest)
    if command == "plot":
        from rlvr.plot import plot_main

        return plot_main(rest)
    if command == "verify":
        from rlvr.verifier.cli import verify_main

        return verify_main(rest)
    if command == "serve-verifier":
        from rlvr.verifier.cli import serve_main

        return serve_main(rest)
    print(f"rlvr: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


def _hydra_argv(rest: list[str]) -> list[str]:
    """`output_dir=PATH` also becomes Hydra's run dir, so Hydra writes nothing anywhere else."""
    extra = []
    for arg in rest:
        if arg.startswith("output_dir=") and "--multirun" not in rest and "-m" not in rest:
            extra.append(f"hydra.run.dir={arg.split('=', 1)[1]}")
    return rest + extra


def train_main(rest: list[str]) -> int:
    import hydra
    from omegaconf import DictConfig

    from rlvr.config import ConfigError, config_dir, register_configs, to_object, validate

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    register_configs()
    outcome = {"code": 0}

    @hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
    def _train(cfg: DictConfig):
        from rlvr.orchestrator.checkpoint import find_resume_checkpoint
        from rlvr.plugins import import_plugins
        from rlvr.rollout.offline import OfflineError, read_rollouts

        try:
            import_plugins(cfg.algorithm.plugins)
            validate(cfg)
            if cfg.rollout.source == "offline":  # a bad file is refused before any worker starts
                read_rollouts(cfg.rollout.offline_path)
            find_resume_checkpoint(cfg.resume, cfg.output_dir)  # a bad resume=PATH, before any model is built
        except (ConfigError, ImportError, OfflineError, FileNotFoundError) as err:
            print(err, file=sys.stderr)
            outcome["code"] = 2
            return None
        from rlvr.orchestrator.loop import train

        summary = train(_with_sweep_names(to_object(cfg)))
        if summary.get("interrupted"):
            outcome["code"] = 143 if summary["interrupted"] == "SIGTERM" else 130
        return summary

    saved = sys.argv
    sys.argv = ["rlvr train", *_hydra_argv(rest)]
    try:
        _train()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        sys.argv = saved
    return outcome["code"]


def _with_sweep_names(cfg):
    """In a --multirun sweep, W&B runs are grouped by the sweep and named by their overrides."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        wandb = cfg.logger.wandb
        wandb.group = wandb.group or os.path.basename(os.path.normpath(hc.sweep.dir))
        wandb.name = wandb.name or (hc.job.override_dirname or f"job{hc.job.num}")
    return cfg


if __name__ == "__main__":
    sys.exit(main())

"""`hydra/launcher=rlvr_ray`: run the jobs of an `rlvr train --multirun` sweep on a Ray cluster.

For each job the launcher composes the job's config (as Hydra's basic launcher would), then starts one
Ray actor (`_job.JobRunner`) that runs `rlvr train` as a child process with the job's overrides plus:
- `output_dir=<hydra.sweep.dir>/<hydra.sweep.subdir>` (the job's own run dir; its stdout/stderr go to
  `job.log` there),
- `cluster.address=<the cluster's GCS address>`, so the job's trainer and vLLM actors join the cluster
  the launcher is connected to,
- `logger.wandb.group` / `logger.wandb.name` (the sweep dir's name / the job's overrides, unless the job
  sets them), as an in-process sweep job would get.
Jobs start as the cluster's resources allow (see `RayLauncherConf`); results come back as Hydra
JobReturns whose return value is the run's summary.json.

Ray is imported only when a sweep is launched: Hydra imports this module at every start-up.
"""

# No `from __future__ import annotations` here: Hydra's plugin scan runs this module before it is in
# sys.modules, where dataclasses would look string annotations up.
import copy
import logging
import os
import re
import signal
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from .config import RayLauncherConf  # noqa: F401  (registers hydra/launcher=rlvr_ray)

log = logging.getLogger(__name__)

# Keys the launcher sets for every job; a job's own override of them is replaced.
_SET_BY_LAUNCHER = ("output_dir", "cluster.address", "logger.wandb.group", "logger.wandb.name")
# Hydra overrides of the sweep itself, not of a job (every other hydra override, e.g. hydra.searchpath,
# is passed on to the job).
_SWEEP_ONLY = ("hydra/launcher", "hydra.launcher", "hydra/sweeper", "hydra.sweeper", "hydra.sweep",
               "hydra.run", "hydra.mode", "hydra.output_subdir")


@dataclass
class _Job:
    idx: int
    overrides: List[str]               # the job's task overrides, as Hydra gave them
    config: DictConfig                 # the job's composed config (hydra node included)
    job_dir: str
    argv: List[str] = field(default_factory=list)
    demand: Dict[str, float] = field(default_factory=dict)


class RayLauncher(Launcher):
    def __init__(self, address: str = "auto", max_concurrent: Optional[int] = None, cpus_per_job: float = 1.0,
                 fit_to_cluster: bool = True, drivers_on_launcher_node: bool = True,
                 env: Optional[Dict[str, str]] = None, stop_grace_s: float = 600.0) -> None:
        self.address = address
        self.max_concurrent = max_concurrent
        self.cpus_per_job = float(cpus_per_job)
        self.fit_to_cluster = fit_to_cluster
        self.drivers_on_launcher_node = drivers_on_launcher_node
        self.env = dict(env or {})
        self.stop_grace_s = float(stop_grace_s)
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    # ------------------------------------------------------------------ launch
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [self._compose(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        connected_here = not ray.is_initialized()
        if connected_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            address = ray.get_runtime_context().gcs_address
            for job in jobs:
                job.argv = self._job_argv(job, address, sweep_dir)
            log.info(f"Launching {len(jobs)} jobs on the Ray cluster at {address}")
            results = self._run(ray, jobs)
        finally:
            if connected_here:
                ray.shutdown()
        return [self._job_return(job, results[job.idx]) for job in jobs]

    # ------------------------------------------------------------------ one job's config and command line
    def _compose(self, idx: int, overrides: List[str]) -> _Job:
        """The job's config as Hydra's basic launcher composes it (job num/id, sweep dir and subdir)."""
        assert self.config is not None and self.hydra_context is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = f"{config.hydra.job.name}_{idx}"
            config.hydra.job.num = idx
        saved = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(config)  # ${hydra:...} in sweep.dir/subdir resolve against it
        try:
            job_dir = os.path.abspath(os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)))
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = job_dir
            demand = self._demand(config)
        finally:
            HydraConfig.instance().cfg = saved
        return _Job(idx=idx, overrides=overrides, config=config, job_dir=job_dir, demand=demand)

    def _job_argv(self, job: _Job, address: str, sweep_dir: Path) -> List[str]:
        config = job.config
        saved = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(config)
        try:
            group = OmegaConf.select(config, "logger.wandb.group") or os.path.basename(os.path.normpath(sweep_dir))
            name = (OmegaConf.select(config, "logger.wandb.name") or str(config.hydra.job.override_dirname)
                    or f"job{job.idx}")
        finally:
            HydraConfig.instance().cfg = saved
        hydra_overrides = [o for o in OmegaConf.to_container(config.hydra.overrides.hydra)
                           if not _key(o).startswith(_SWEEP_ONLY)]
        task = [o for o in job.overrides if _key(o) not in _SET_BY_LAUNCHER]
        return [*hydra_overrides, *task, f"output_dir={_quote(job.job_dir)}", f"cluster.address={_quote(address)}",
                f"logger.wandb.group={_quote(str(group))}", f"logger.wandb.name={_quote(str(name))}"]

    def _demand(self, config: DictConfig) -> Dict[str, float]:
        """CPUs/GPUs the job takes: its driver plus one placement bundle per trainer rank and vLLM worker."""
        bundles = (OmegaConf.select(config, "trainer.num_ranks", default=0) or 0) + \
                  (OmegaConf.select(config, "rollout.num_workers", default=0) or 0)
        cpus = OmegaConf.select(config, "cluster.cpus_per_actor", default=0.0) or 0.0
        gpus = OmegaConf.select(config, "cluster.gpus_per_actor", default=0.0) or 0.0
        return {"CPU": self.cpus_per_job + bundles * float(cpus), "GPU": bundles * float(gpus)}

    # ------------------------------------------------------------------ scheduling
    def _run(self, ray, jobs: List[_Job]) -> Dict[int, Any]:
        from hydra_plugins.rlvr_ray_launcher._job import JobRunner

        options: Dict[str, Any] = {"num_cpus": self.cpus_per_job, "max_restarts": 0, "max_concurrency": 2}
        if self.drivers_on_launcher_node:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                node_id=ray.get_runtime_context().get_node_id(), soft=False)
        runner_cls = ray.remote(JobRunner).options(**options)
        runners: Dict[Any, Any] = {}  # run ref -> its actor
        pending, running, results = deque(jobs), {}, {}
        with _FirstSigint() as interrupted:
            while (pending or running) and not interrupted.received:
                while pending and self._may_start(pending[0], list(running.values()), ray.cluster_resources()):
                    job = pending.popleft()
                    spec = {"overrides": job.argv, "job_dir": job.job_dir, "cwd": os.getcwd(), "env": self.env}
                    runner = runner_cls.remote()
                    ref = runner.run.remote(spec)
                    running[ref], runners[ref] = job, runner
                    log.info(f"\t#{job.idx} started ({len(running)} running): "
                             f"{' '.join(filter_overrides(job.overrides))} -> {job.job_dir}")
                done, _ = ray.wait(list(running), num_returns=1, timeout=2.0)  # short: Ctrl-C is seen
                for ref in done:
                    job = running.pop(ref)
                    try:
                        results[job.idx] = ray.get(ref)
                    except Exception as err:  # the actor itself failed (worker died, node lost, ...)
                        results[job.idx] = err
                    log.info(f"\t#{job.idx} {_outcome(results[job.idx])}")
                    ray.kill(runners.pop(ref))
            if interrupted.received:
                # Each job gets one SIGTERM (rlvr: finish the step, checkpoint, exit 143); leaving before
                # they exit would kill the actors and with them the jobs (a second signal does that).
                log.warning(f"interrupted: stopping {len(running)} running jobs; each finishes its step and "
                            f"checkpoints (resume with resume=auto). Ctrl-C again to leave at once.")
                # each stop returns once its job has exited (or been killed after the grace period)
                stops = [runners[ref].stop.remote(self.stop_grace_s) for ref in running]
                if stops:
                    ray.wait(stops, num_returns=len(stops), timeout=self.stop_grace_s + 60)
                for runner in runners.values():
                    ray.kill(runner)
                raise KeyboardInterrupt
        return results

    def _may_start(self, job: _Job, running: List[_Job], capacity: Dict[str, float]) -> bool:
        if not running:
            return True
        if self.max_concurrent is not None and len(running) >= self.max_concurrent:
            return False
        if not self.fit_to_cluster:
            return True
        return fits(job.demand, [j.demand for j in running], capacity)

    # ------------------------------------------------------------------ results
    def _job_return(self, job: _Job, result: Any) -> JobReturn:
        ret = JobReturn()
        ret.overrides = job.overrides
        ret.hydra_cfg = copy.deepcopy(job.config)
        task_cfg = copy.deepcopy(job.config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        ret.cfg = task_cfg
        ret.working_dir = os.getcwd()
        ret.task_name = str(job.config.hydra.job.name)
        if isinstance(result, dict) and result.get("rc") == 0:
            ret.status = JobStatus.COMPLETED
            ret.return_value = result.get("summary")
        else:
            ret.status = JobStatus.FAILED
            ret.return_value = JobFailed(job.idx, job.job_dir, result)
        return ret


class JobFailed(RuntimeError):
    """A sweep job that exited non-zero (or whose Ray actor failed); the message has its log's tail."""

    def __init__(self, idx: int, job_dir: str, result: Any) -> None:
        if isinstance(result, dict):
            rc = result.get("rc")
            why = {130: "interrupted (SIGINT), checkpoint written", 143: "stopped (SIGTERM), checkpoint written",
                   2: "config error"}.get(rc, f"exit code {rc}")
            msg = f"job #{idx} failed: {why}; log: {result.get('log')}\n{result.get('tail', '')}"
        else:
            msg = f"job #{idx} failed: its Ray actor raised {result!r}; run dir {job_dir}"
        super().__init__(msg)


def fits(demand: Dict[str, float], running: List[Dict[str, float]], capacity: Dict[str, float]) -> bool:
    """True when `demand` fits in `capacity` beside the `running` jobs' demands (every resource)."""
    for resource, amount in demand.items():
        if amount <= 0:
            continue
        used = sum(d.get(resource, 0.0) for d in running)
        if used + amount > capacity.get(resource, 0.0) + 1e-9:
            return False
    return True


def _key(override: str) -> str:
    """The key (or config group) an override string sets: 'optim.lr=1e-4' -> 'optim.lr'."""
    try:
        return OverridesParser.create().parse_override(override).key_or_group
    except Exception:  # not parseable here: compare the text before '=' (the job reports real errors)
        return override.split("=", 1)[0].lstrip("+~")


def _quote(value: str) -> str:
    """A Hydra override value that stays one plain string (commas, '=', spaces, quotes, '${'): single
    quotes, Hydra's escapes (backslashes before a quote or at the end doubled, the quote escaped)."""
    out = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    out = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, out)
    return "'" + out.replace("${", "\\${") + "'"


def _outcome(result: Any) -> str:
    if isinstance(result, dict):
        state = "done" if result["rc"] == 0 else f"FAILED (exit {result['rc']}; log {result['log']})"
        return f"{state} in {result['wall_s']:.0f}s on {result['host']}"
    return f"FAILED: {result!r}"


class _FirstSigint:
    """The first SIGINT only sets `received` (the loop then stops its jobs in order); a second one raises
    KeyboardInterrupt. A flag that the loop reads, because Python's default handler raises wherever the
    main thread is, inside Ray's blocking calls too, which did not always let it out: a CI run's Ctrl-C
    was ignored there and its job ran to the end."""

    def __init__(self):
        self.received = False
        self._old = None

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

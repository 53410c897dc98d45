"""`hydra/launcher=rlvr_ray`: the launcher's options (registered in Hydra's ConfigStore on import)."""

# No `from __future__ import annotations` here: Hydra's plugin scan runs this module before it is in
# sys.modules, where dataclasses would look string annotations up.
from dataclasses import dataclass, field
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.rlvr_ray_launcher.ray_launcher.RayLauncher"
    # The Ray cluster: "auto" (RAY_ADDRESS, else the cluster `ray start` last started on this node) or
    # "host:port" of its head. Jobs join the same cluster (their cluster.address is set to it).
    address: str = "auto"
    # Jobs running at once (None: as many as the cluster's CPUs and GPUs hold, see below).
    max_concurrent: Optional[int] = None
    # CPUs reserved for each job's driver process (the RL loop and its verifier pool run there).
    cpus_per_job: float = 1.0
    # Start a job only when its actors fit beside the running jobs' in the cluster's total CPUs/GPUs:
    # (trainer.num_ranks + rollout.num_workers) x cluster.cpus_per_actor / gpus_per_actor, plus
    # cpus_per_job. A job that does not fit waits here instead of timing out on its placement group.
    # (Only this sweep's jobs are counted; the first job always starts.)
    fit_to_cluster: bool = True
    # Run the job drivers on this node (the launcher's); their actors go wherever their placement
    # group fits. false: any node with cpus_per_job free (then every node needs the same checkout,
    # environment and paths, e.g. a shared filesystem).
    drivers_on_launcher_node: bool = True
    # Extra environment variables for every job: `+hydra.launcher.env.WANDB_MODE=offline` on the command
    # line (the "+" adds a key), or `env: {WANDB_MODE: offline}` under hydra.launcher in a YAML file.
    env: Dict[str, str] = field(default_factory=dict)
    # On cancel (Ctrl-C): SIGTERM to each job (rlvr finishes the step and checkpoints), SIGKILL after this.
    stop_grace_s: float = 600.0


ConfigStore.instance().store(group="hydra/launcher", name="rlvr_ray", node=RayLauncherConf, provider="rlvr")

"""Ray start-up and placement: one placement group holds every trainer rank and rollout worker.

Two layouts (`cluster.placement`):
- disaggregated: T + R bundles; trainer rank i in bundle i, rollout worker j in bundle T + j (own devices).
- colocated: one bundle per (trainer rank i, rollout worker i) pair, both actors in it, each taking half
  of its GPU (fractional `num_gpus`, so Ray gives both the same device); vLLM sleeps while the trainer
  works. Needs rollout.num_workers == trainer.num_ranks.

Bundles may land on any node of the cluster (PACK: as few nodes as fit); `describe()` says where.
"""

from __future__ import annotations

import json
import os
import socket

import ray
from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlvr.runtime import actor_env, driver_env

MODES = ("disaggregated", "colocated")


def start_ray(cluster, cache_dir: str, *, kv_cache_gb: float = 1.0) -> None:
    """Start a local Ray (on loopback, temp files in the cache dir) or join `cluster.address`
    (`cluster`: the typed `ClusterConfig`)."""
    driver_env(cache_dir)
    if ray.is_initialized():
        return
    env = actor_env(cache_dir, kv_cache_gb=kv_cache_gb)
    kwargs = dict(include_dashboard=False, log_to_driver=True, runtime_env={"env_vars": env})
    if cluster.address:
        ray.init(address=cluster.address, **kwargs)
        return
    # A local Ray stays on loopback. Ray reads this switch when it is first imported (already done
    # here), so set its constant as well as the variable its child processes read.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # a Ray without the switch binds as it likes
        pass
    from rlvr.orchestrator.signals import children_leave_stopping_to_the_driver

    with children_leave_stopping_to_the_driver():
        ray.init(num_cpus=cluster.num_cpus, **kwargs)


class Placement:
    """Where each trainer rank and rollout worker runs (see the module docstring for the layouts).
"""

    def __init__(self, num_trainers: int, num_rollouts: int, *, cpus: float, gpus: float, strategy: str = "PACK",
                 mode: str | None = None):
        mode = mode or "disaggregated"
        if mode not in MODES:
            raise ValueError(f"cluster.placement={mode!r}: must be one of {', '.join(MODES)}")
        if mode == "colocated" and num_rollouts != num_trainers:
            raise ValueError(f"cluster.placement=colocated pairs trainer rank i with rollout worker i: "
                             f"rollout.num_workers ({num_rollouts}) must equal trainer.num_ranks ({num_trainers})")
        self.mode, self.num_trainers, self.num_rollouts = mode, num_trainers, num_rollouts
        self.cpus, self.gpus = cpus, gpus
        if mode == "colocated":  # one device per pair: each actor asks for half of the bundle's GPU
            bundle = {"CPU": 2 * cpus, **({"GPU": gpus} if gpus else {})}
            self.actor_gpus = gpus / 2
            count = num_trainers
        else:
            bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
            self.actor_gpus = gpus
            count = num_trainers + num_rollouts
        self.group = placement_group([dict(bundle) for _ in range(count)], strategy=strategy)
        ray.get(self.group.ready(), timeout=300)
        print(f"[rlvr] placement: {json.dumps(self.describe())}", flush=True)

    @property
    def colocated(self) -> bool:
        return self.mode == "colocated"

    def trainer_bundle(self, rank: int) -> int:
        return rank

    def rollout_bundle(self, index: int) -> int:
        return index if self.colocated else self.num_trainers + index

    def options(self, index: int, *, threads: int = 1) -> dict:
        return dict(
            num_cpus=self.cpus, num_gpus=self.actor_gpus,
            scheduling_strategy=PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index),
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}},
        )

    def trainer(self, rank: int) -> dict:
        return self.options(self.trainer_bundle(rank), threads=1)

    def rollout(self, index: int, threads: int = 2) -> dict:
        return self.options(self.rollout_bundle(index), threads=threads)

    def master_address(self) -> tuple[str, int]:
        """The node and a free port of trainer rank 0, for a rendezvous (torch.distributed, NCCL sync).
        The probe asks for no resources, so it also runs once the bundle is full of actors."""
        strategy = PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=self.trainer_bundle(0))
        return ray.get(_free_port.options(scheduling_strategy=strategy).remote())

    def describe(self) -> dict:
        """The node of every bundle, trainer rank and rollout worker (Ray pins an actor to its bundle's node)."""
        bundle_nodes = placement_group_table(self.group)["bundles_to_node_id"]
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        nodes = [bundle_nodes[i] for i in range(len(bundle_nodes))]
        trainer_bundles = [self.trainer_bundle(r) for r in range(self.num_trainers)]
        rollout_bundles = [self.rollout_bundle(i) for i in range(self.num_rollouts)]
        return {
            "mode": self.mode,
            "nodes": {n: ips.get(n) for n in dict.fromkeys(nodes)},
            "trainer_bundles": trainer_bundles, "rollout_bundles": rollout_bundles,
            "trainer_nodes": [nodes[b] for b in trainer_bundles], "rollout_nodes": [nodes[b] for b in rollout_bundles],
            "cpus_per_actor": self.cpus, "gpus_per_actor": self.actor_gpus,
        }

    def remove(self) -> None:
        remove_placement_group(self.group)


@ray.remote(num_cpus=0)
def _free_port() -> tuple[str, int]:
    addr = ray.util.get_node_ip_address()
    with socket.socket() as s:
        s.bind(("", 0))
        return addr, s.getsockname()[1]

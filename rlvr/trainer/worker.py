"""A trainer rank: a Ray actor in one torch.distributed group (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from rlvr.weight_sync.cuda_ipc import CudaIpcSender
from rlvr.weight_sync.nccl import NcclSender
from rlvr.weight_sync.object_store import ObjectStoreSender


@dataclass(frozen=True)
class CriticSettings:
    """PPO's value model: its learning rate and value clipping. Made from what `rlvr.config.resolve_critic`
    returns (a dict) or from a resolved object with the same two attributes."""

    lr: float
    clip_eps: float

    @classmethod
    def of(cls, critic) -> CriticSettings | None:
        if critic is None or isinstance(critic, CriticSettings):
            return critic
        if isinstance(critic, Mapping):
            return cls(lr=critic["lr"], clip_eps=critic["clip_eps"])
        return cls(lr=critic.lr, clip_eps=critic.clip_eps)


class TrainerWorker(ObjectStoreSender, NcclSender, CudaIpcSender):
    """Created with `ray.remote(TrainerWorker).options(...)`; see `rlvr.orchestrator.groups.TrainerGroup`.
    The weight-sync methods come from the transports' sender mixins (`rlvr.weight_sync`).

    `cfg`: the typed `rlvr.config.Config` (its trainer, optim, model, seed and algorithm.plugins are read)."""

    def __init__(self, rank: int, world_size: int, master_addr: str, master_port: int, model_dir: str, cfg, *,
                 with_reference: bool, critic: CriticSettings | None = None):
        from rlvr.plugins import import_plugins
        from rlvr.trainer.engine import TrainEngine, init_distributed

        import_plugins(cfg.algorithm.plugins)
        torch.manual_seed(cfg.seed)
        self.rank = rank
        self.model_dir = model_dir
        init_distributed(rank, world_size, master_addr, master_port)
        self.engine = TrainEngine(model_dir, optim=cfg.optim, trainer=cfg.trainer, model=cfg.model,
                                  world_size=world_size, with_reference=with_reference)
        self.critic, self.value_clip = None, None
        if critic is not None:  # PPO: the value model, its own engine and optimizer in the same group
            self.value_clip = critic.clip_eps
            self.critic = TrainEngine(model_dir, optim=cfg.optim, trainer=cfg.trainer, model=cfg.model,
                                      world_size=world_size, with_reference=False, critic=True, lr=critic.lr)

    def ready(self) -> dict:
        return {"rank": self.rank, "pid": os.getpid(), "threads": torch.get_num_threads()}

    def logprobs(self, batch, temperature: float) -> dict:
        start = time.perf_counter()
        out = self.engine.logprobs(batch, temperature)
        out["seconds"] = time.perf_counter() - start
        return out

    def update(self, shards, counts, n_micro, spec: dict) -> dict:
        return self.engine.update(shards, counts, n_micro, **spec)

    def values(self, batch):
        return self.critic.values(batch)

    def update_values(self, shards, counts, n_micro) -> dict:
        return self.critic.update_values(shards, counts, n_micro, clip_eps=self.value_clip)

    def state_dict(self) -> dict | None:
        return self.engine.full_state_dict(self.rank)

    def save_checkpoint(self, path: str, tag: str, client_state: dict) -> None:
        self.engine.save_checkpoint(path, tag, client_state)
        if self.critic is not None:
            self.critic.save_checkpoint(f"{path}/critic", tag, client_state)

    def load_checkpoint(self, path: str, tag: str) -> dict:
        if self.critic is not None:
            self.critic.load_checkpoint(f"{path}/critic", tag)
        return self.engine.load_checkpoint(path, tag)

    def export_hf(self, out_dir: str) -> None:
        self.engine.export_hf(out_dir, self.rank, self.model_dir)

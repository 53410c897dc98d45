"""Weight sync: the trainer's new weights into every vLLM worker after each optimizer step, through one
interface with three transports, one module each (driver, sender and receiver code together):

- `object_store.py` (CPU, and the fallback anywhere): the full state dict once through Ray's object store.
- `nccl.py` (GPUs, disaggregated): rank 0 broadcasts bucket by bucket to every worker.
- `cuda_ipc.py` (GPUs, colocated): rank i hands worker i each bucket as a CUDA IPC handle.

`buckets.py` plans and packs the buckets of the GPU transports. The actors take part through mixins
(`ObjectStoreSender`, `NcclReceiver`, ...) that `TrainerWorker` and `RolloutWorker` inherit.
`WeightSync` is the driver's one object: `sync(version)` pushes the weights and sets the rollout group's
weight version (its only writer); `sync.max_abs_error()` checks that vLLM holds the trainer's weights.
"""

from __future__ import annotations

import time

import torch

from rlvr.weight_sync.buckets import DEFAULT_BUCKET_BYTES
from rlvr.weight_sync.cuda_ipc import CudaIpcSync
from rlvr.weight_sync.nccl import NcclSync
from rlvr.weight_sync.object_store import ObjectStoreSync

BACKENDS = ("auto", "object_store", "nccl", "cuda_ipc")
TRANSPORTS = {"object_store": ObjectStoreSync, "nccl": NcclSync, "cuda_ipc": CudaIpcSync}


class WeightSync:
    """Trainer -> every rollout worker, after each optimizer step. `trainers`, `rollouts`: the groups
    (`rlvr.orchestrator.groups`); `placement`: where they run (None: CPU, the object store)."""

    def __init__(self, backend: str, trainers, rollouts, placement, *, bucket_bytes: int | None = None):
        colocated = placement is not None and placement.colocated
        cuda = placement.gpus > 0 if placement is not None else None
        self.backend = choose_backend(backend, colocated=colocated, cuda=cuda)
        self.bucket_bytes = bucket_bytes or DEFAULT_BUCKET_BYTES
        self.trainers, self.rollouts = trainers, rollouts
        print(f"[rlvr] weight sync: {self.backend}"
              + (f" (buckets of {self.bucket_bytes >> 20} MiB)" if self.backend != "object_store" else ""), flush=True)
        self.transport = TRANSPORTS[self.backend](trainers, rollouts, placement, self.bucket_bytes)

    def __call__(self, version: int) -> float:
        """Push the trainer's current weights to every rollout worker; they are weight version `version`
        from now on (samples generated next carry it). Returns the seconds it took."""
        start = time.perf_counter()
        self.transport.push()
        self.rollouts.version = version
        return time.perf_counter() - start

    def max_abs_error(self) -> float:
        """Max |trainer - vLLM| over the weights of rollout worker 0 (slow: for checks)."""
        return weight_sync_error(self.trainers.state_dict(), self.rollouts.engine_weights())


def choose_backend(name: str, *, colocated: bool = False, cuda: bool | None = None) -> str:
    """`auto`: cuda_ipc for colocated actors on GPUs, nccl for disaggregated ones, the object store on CPU.
    `cuda`: whether the actors have GPUs (default: whether this process sees CUDA)."""
    if name not in BACKENDS:
        raise ValueError(f"trainer.weight_sync={name!r}: must be one of {', '.join(BACKENDS)}")
    if cuda is None:
        cuda = torch.cuda.is_available()
    if name == "auto":
        return ("cuda_ipc" if colocated else "nccl") if cuda else "object_store"
    if name == "cuda_ipc" and not cuda:
        raise ValueError("trainer.weight_sync=cuda_ipc needs CUDA: trainer and vLLM actors on GPUs "
                         "(cluster.gpus_per_actor > 0); on CPU use object_store (or auto)")
    if name == "cuda_ipc" and not colocated:
        raise ValueError("trainer.weight_sync=cuda_ipc needs cluster.placement=colocated (trainer rank i and "
                         "rollout worker i on one GPU); disaggregated placement on GPUs uses nccl (or auto)")
    if name == "nccl" and not cuda:
        raise ValueError("trainer.weight_sync=nccl needs CUDA (cluster.gpus_per_actor > 0); on CPU use "
                         "object_store (or auto)")
    if name == "nccl" and colocated:  # NCCL refuses two ranks on one device ("Duplicate GPU detected")
        raise ValueError("trainer.weight_sync=nccl cannot link a trainer rank and a vLLM worker that share a GPU "
                         "(cluster.placement=colocated); use cuda_ipc (or auto)")
    return name


def weight_sync_error(trainer_state: dict, engine_state: dict) -> float:
    """Max |trainer - engine| over every weight the engine holds (its vocabulary may be padded)."""
    worst, matched = 0.0, 0
    for name, ref in trainer_state.items():
        got = engine_state.get(name)
        if got is None:
            continue
        got = got[tuple(slice(0, s) for s in ref.shape)]
        if got.shape != ref.shape:
            raise ValueError(f"weight sync: {name} has shape {tuple(got.shape)} in the engine, "
                             f"{tuple(ref.shape)} in the trainer")
        ref = ref.to(got.dtype)  # in the engine's dtype: a bf16 engine holds the trainer's weights rounded
        worst = max(worst, float((got.float() - ref.float()).abs().max()))
        matched += 1
    if matched < len(engine_state) // 2:
        raise ValueError(f"weight sync: only {matched} of {len(engine_state)} engine weights matched trainer names")
    return worst

"""The `cuda_ipc` transport (GPUs, `cluster.placement=colocated`): trainer rank i and rollout worker i
share one GPU; the rank packs a bucket (`buckets.py`) into one GPU buffer and hands the worker a CUDA IPC
handle to it (`torch.multiprocessing.reductions.reduce_tensor`); the worker maps the same memory, reloads
from it in place, and returns before the rank packs the next bucket. No copy leaves the device. The ranks
call the workers themselves, so no weights pass the driver. A replaced rollout worker cannot rejoin.
"""

from __future__ import annotations

import time

import ray
import torch

from rlvr.weight_sync.buckets import Bucket, buckets, unpack


def device_uuid(device=None) -> str:
    """The physical GPU behind `device` (indices differ between processes; the UUID does not)."""
    return str(torch.cuda.get_device_properties(device if device is not None else torch.cuda.current_device()).uuid)


def ipc_handle(buf: torch.Tensor) -> tuple:
    """A picklable handle to a CUDA buffer that another process on the same GPU can map.
    The caller keeps `buf` alive until the receiver is done with it."""
    from torch.multiprocessing.reductions import reduce_tensor

    torch.cuda.current_stream(buf.device).synchronize()  # the packed bytes are written before anyone reads
    return reduce_tensor(buf)


def open_ipc_handle(handle: tuple, *, sender_uuid: str) -> torch.Tensor:
    """The sender's buffer, mapped into this process (no copy). Fails clearly when the sender is on
    another GPU: CUDA IPC only works between processes on one device."""
    here = torch.cuda.current_device()
    if device_uuid(here) != sender_uuid:
        raise RuntimeError(f"CUDA IPC weight sync: the trainer rank is on GPU {sender_uuid}, this rollout worker "
                           f"on {device_uuid(here)}; cuda_ipc needs both on one GPU (cluster.placement=colocated)")
    rebuild, args = handle
    args = list(args)
    args[6] = here  # storage_device: the same GPU may have another index under this process's CUDA_VISIBLE_DEVICES
    return rebuild(*args)


class CudaIpcSender:
    """Mixed into the trainer actor (`TrainerWorker`: `self.engine`)."""

    def send_weights_ipc(self, worker, bucket_bytes: int) -> float:
        """The full weights, one bucket at a time, into the rollout worker on this rank's GPU. Every rank
        sends to its own worker: `iter_full_weights(0, ...)` yields on every rank (ZeRO-1/2: each rank
        holds the full parameters; ZeRO-3: each parameter is gathered on all ranks, one at a time). The
        worker has loaded a bucket when its call returns; only then is the next packed."""
        start = time.perf_counter()
        device = self.engine.device
        uuid = device_uuid(device)
        for bucket, buf in buckets(self.engine.iter_full_weights(0, device=device), bucket_bytes, device):
            ray.get(worker.load_ipc_bucket.remote(ipc_handle(buf), bucket, uuid))
            del buf
            torch.cuda.ipc_collect()  # the worker has let go of the bucket: its memory can be reused
        return time.perf_counter() - start


class CudaIpcReceiver:
    """Mixed into the rollout actor (`RolloutWorker`: `self.engine`)."""

    def load_ipc_bucket(self, handle: tuple, bucket: Bucket, sender_uuid: str) -> float:
        """One bucket of the colocated trainer rank's weights, read in place from its memory.
        Returns once vLLM has copied it, so the trainer may free or reuse the buffer."""
        start = time.perf_counter()
        self.engine.wake_up()
        buf = open_ipc_handle(handle, sender_uuid=sender_uuid)
        self.engine.load_weights(unpack(buf, bucket))
        torch.cuda.synchronize()
        del buf
        return time.perf_counter() - start


class CudaIpcSync:
    """Driver side: trainer rank i feeds rollout worker i (every rank takes part in the ZeRO-3 gathers)."""

    def __init__(self, trainers, rollouts, placement, bucket_bytes: int):
        if len(rollouts.workers) != len(trainers.ranks):
            raise ValueError("trainer.weight_sync=cuda_ipc pairs trainer rank i with rollout worker i: "
                             "rollout.num_workers must equal trainer.num_ranks")
        self.trainers, self.rollouts, self.bucket_bytes = trainers, rollouts, bucket_bytes

    def push(self) -> None:
        ray.get([r.send_weights_ipc.remote(w, self.bucket_bytes)
                 for r, w in zip(self.trainers.ranks, self.rollouts.workers)])

"""Weight sync from the trainer to the rollout workers, one interface, three transports.

- `object_store` (CPU, and the fallback anywhere): rank 0 puts the full state dict in Ray's object
  store once; every worker fetches it zero-copy and reloads in place.
- `nccl` (GPUs, trainer and vLLM on separate devices): rank 0 and every worker join one extra NCCL
  group (vLLM's stateless group, so neither side's torch.distributed world is touched) and rank 0
  broadcasts the weights bucket by bucket; workers reload each bucket in place as it lands.
- `cuda_ipc` (GPUs, `cluster.placement=colocated`): trainer rank i and rollout worker i share one GPU;
  the rank packs a bucket into one GPU buffer and hands the worker a CUDA IPC handle to it
  (`torch.multiprocessing.reductions.reduce_tensor`); the worker maps the same memory, reloads from
  it in place, and returns before the rank packs the next bucket. No copy leaves the device.

Buckets: the weights travel as flat uint8 buffers of at most `bucket_bytes` (a layer larger than that
gets a bucket of its own), so neither side ever holds a second full copy of the model. A bucket never
splits one layer's tensors (`layer_key`): vLLM fuses q/k/v and gate/up into one parameter and reloads
layer by layer, so each reload call must carry whole layers; layers missing from a call keep their
weights. Both sides compute the same plan from the names, shapes and dtypes (`plan_buckets`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

BACKENDS = ("auto", "object_store", "nccl", "cuda_ipc")
DEFAULT_BUCKET_BYTES = 512 << 20
ALIGN = 256  # every tensor starts on a 256-byte boundary of its bucket (views of any dtype are aligned)


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


def tensor_metas(state: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...], str]]:
    return [(name, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in state.items()]


# ---------------------------------------------------------------------------------------------- buckets

@dataclass
class Bucket:
    """Where each tensor lies in one flat uint8 buffer: (name, shape, dtype, byte offset)."""

    entries: list[tuple[str, tuple[int, ...], str, int]]
    nbytes: int


_BLOCK = re.compile(r"^(.*?\.\d+)\.")  # "model.layers.3.self_attn.q_proj.weight" -> "model.layers.3"


def layer_key(name: str) -> str:
    """The group a tensor is never separated from: its numbered block (a transformer layer), else its module."""
    m = _BLOCK.match(name)
    return m.group(1) if m else name.rpartition(".")[0]


def _nbytes(shape, dtype: str) -> int:
    numel = 1
    for d in shape:
        numel *= int(d)
    return numel * getattr(torch, dtype).itemsize


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _layers(items: Iterable[tuple[str, int, object]]) -> Iterator[list]:
    """Consecutive items of one layer (`layer_key`)."""
    group: list = []
    key = None
    for item in items:
        k = layer_key(item[0])
        if group and k != key:
            yield group
            group = []
        group.append(item)
        key = k
    if group:
        yield group


def _cut(items: Iterable[tuple[str, int, object]], bucket_bytes: int) -> Iterator[tuple[list, int]]:
    """(name, nbytes, payload) items in order -> buckets [(name, offset, payload)] and their size: whole
    layers, a new bucket whenever the next layer would pass `bucket_bytes` (a layer larger than that
    alone is a bucket of its own)."""
    entries: list = []
    size = 0
    for layer in _layers(items):
        if entries and size + sum(_aligned(n) for _, n, _ in layer) > bucket_bytes:
            yield entries, size
            entries, size = [], 0
        for name, nbytes, payload in layer:
            entries.append((name, size, payload))
            size = _aligned(size + nbytes)
    if entries:
        yield entries, size


def plan_buckets(metas: Iterable[tuple[str, tuple[int, ...], str]],
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> list[Bucket]:
    """The buckets `buckets` will make of tensors with these names, shapes and dtypes, in this order
    (receivers that allocate before the bytes arrive need it)."""
    items = ((name, _nbytes(shape, dtype), (tuple(shape), dtype)) for name, shape, dtype in metas)
    return [Bucket([(name, *meta, offset) for name, offset, meta in entries], size)
            for entries, size in _cut(items, bucket_bytes)]


def buckets(named: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int,
            device) -> Iterator[tuple[Bucket, torch.Tensor]]:
    """Senders: `named` packed into flat buffers on `device`, bucket by bucket. At most one bucket (and
    the next layer) of tensors is held at a time: the caller is done with a bucket before it asks for
    the next. The iteration runs `named` to its end (a ZeRO-3 rank must take part in every gather)."""
    items = ((name, t.numel() * t.element_size(), t) for name, t in named)
    for entries, size in _cut(items, bucket_bytes):
        buf = torch.empty(size, dtype=torch.uint8, device=device)
        for _, offset, t in entries:
            flat = t.detach().contiguous().reshape(-1).view(torch.uint8)
            buf[offset:offset + flat.numel()].copy_(flat)
        bucket = Bucket([(name, tuple(t.shape), str(t.dtype).removeprefix("torch."), offset)
                         for name, offset, t in entries], size)
        del entries
        yield bucket, buf
        del bucket, buf  # before the next bucket is allocated


def unpack(buf: torch.Tensor, bucket: Bucket) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) views into `buf` (no copy)."""
    out = []
    for name, shape, dtype, offset in bucket.entries:
        n = _nbytes(shape, dtype)
        out.append((name, buf[offset:offset + n].view(getattr(torch, dtype)).view(shape)))
    return out


# ------------------------------------------------------------------------------------------------ NCCL

def nccl_group(host: str, port: int, rank: int, world_size: int, device: torch.device):
    """A NCCL communicator of trainer rank 0 (rank 0 here) and the rollout workers (ranks 1..)."""
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
    return PyNcclCommunicator(group, device=device)


def broadcast(comm, named: Iterable[tuple[str, torch.Tensor]], plan: list[Bucket], device,
              bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    """Rank 0: one broadcast per bucket of `plan` (the receivers allocate from it; made with the same
    `bucket_bytes`)."""
    stream = torch.cuda.current_stream()
    made = 0
    for i, (bucket, buf) in enumerate(buckets(named, bucket_bytes, device)):
        if i >= len(plan) or bucket.entries != plan[i].entries:
            raise RuntimeError(f"weight sync: bucket {i} differs from the receivers' plan (the model changed shape?)")
        comm.broadcast(buf, src=0, stream=stream)
        stream.synchronize()
        made += 1
    if made != len(plan):
        raise RuntimeError(f"weight sync: sent {made} buckets, the receivers wait for {len(plan)}")


def receive(comm, plan: list[Bucket], device) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Workers: yields each bucket's (name, tensor) views as it lands; load them before asking for the next."""
    stream = torch.cuda.current_stream()
    for bucket in plan:
        buf = torch.empty(bucket.nbytes, dtype=torch.uint8, device=device)
        comm.broadcast(buf, src=0, stream=stream)
        stream.synchronize()
        yield unpack(buf, bucket)


# -------------------------------------------------------------------------------------------- CUDA IPC

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

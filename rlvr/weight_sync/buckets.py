"""Bucket planning: the weights travel as flat uint8 buffers, bucket by bucket, on every GPU transport.

A bucket holds at most `bucket_bytes` (a layer larger than that gets a bucket of its own), so neither
side ever holds a second full copy of the model. A bucket never splits one layer's tensors
(`layer_key`): vLLM fuses q/k/v and gate/up into one parameter and reloads layer by layer, so each
reload call must carry whole layers; layers missing from a call keep their weights. Senders pack with
`buckets`; receivers that allocate before the bytes arrive compute the same plan from the names, shapes
and dtypes (`plan_buckets`) and read each buffer back with `unpack` (views, no copy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

DEFAULT_BUCKET_BYTES = 512 << 20
ALIGN = 256  # every tensor starts on a 256-byte boundary of its bucket (views of any dtype are aligned)


def tensor_metas(state: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype name) of each tensor: all a receiver needs to plan the buckets in advance."""
    return [(name, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in state.items()]


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

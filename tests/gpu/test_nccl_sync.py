"""GPU only: the NCCL weight-broadcast path, trainer rank 0 -> a vLLM worker, on separate devices."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                    reason="NCCL broadcast between trainer and vLLM needs 2 CUDA devices")
def test_nccl_weight_sync_matches_trainer(tmp_path, cache_dir):
    from tests.system.helpers import read_metrics, run_train

    out = tmp_path / "run"
    run_train(out, cache_dir, "trainer.num_ranks=1", "trainer.weight_sync=nccl", "trainer.check_weight_sync=true",
              "cluster.gpus_per_actor=1", "model.dtype=float32")
    for m in read_metrics(out):
        assert m["mismatch/weight_sync_max_abs"] < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
@pytest.mark.parametrize("bucket_bytes", [1, 1 << 20])
def test_nccl_broadcast_roundtrip(bucket_bytes):
    """rlvr.weight_sync.nccl's broadcast/receive between two processes, without vLLM or DeepSpeed: the
    receiver allocates from the same bucket plan, and gets every tensor back exactly, in its own dtype."""
    import multiprocessing as mp
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_roundtrip_rank, args=(r, port, bucket_bytes, q)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert q.get(timeout=5) == "ok"


def _state() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"model.layers.0.self_attn.q_proj.weight": torch.randn(3, 4, generator=g),
            "model.layers.0.self_attn.q_proj.bias": torch.arange(5, dtype=torch.float32),
            "model.layers.1.mlp.up_proj.weight": torch.randn(6, 4, generator=g).to(torch.bfloat16),
            "lm_head.weight": torch.randn(7, 4, generator=g)}


def _roundtrip_rank(rank, port, bucket_bytes, q):
    import torch

    from rlvr.weight_sync.buckets import plan_buckets, tensor_metas
    from rlvr.weight_sync.nccl import broadcast, nccl_group, receive

    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    comm = nccl_group("127.0.0.1", port, rank, 2, device)
    state = _state()
    plan = plan_buckets(tensor_metas(state), bucket_bytes)  # both sides make the same plan
    if rank == 0:
        broadcast(comm, ((k, v.to(device)) for k, v in state.items()), plan, device, bucket_bytes)
    else:
        got = {name: t.cpu() for named in receive(comm, plan, device) for name, t in named}
        ok = got.keys() == state.keys() and all(
            got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in state.items())
        q.put("ok" if ok else "mismatch")

"""Weight sync in buckets (rlvr.weight_sync.buckets), and the CUDA IPC transport (GPU, colocated placement).

The bucket plan and the bucket-by-bucket reload into vLLM run on CPU too (NCCL and CUDA IPC receivers
load exactly that way); the CUDA IPC transport and the colocated run need a GPU and skip without one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from rlvr import weight_sync  # noqa: E402
from rlvr.weight_sync import buckets as sync  # noqa: E402
from rlvr.weight_sync import cuda_ipc  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA IPC needs a CUDA device")


def _state(dtype=torch.float32) -> dict:
    g = torch.Generator().manual_seed(0)
    state = {"model.embed_tokens.weight": torch.randn(50, 8, generator=g)}
    for i in range(3):
        for leaf, shape in (("self_attn.q_proj.weight", (8, 8)), ("self_attn.q_proj.bias", (8,)),
                            ("self_attn.k_proj.weight", (4, 8)), ("self_attn.v_proj.weight", (4, 8)),
                            ("mlp.gate_proj.weight", (16, 8)), ("mlp.up_proj.weight", (16, 8)),
                            ("input_layernorm.weight", (8,))):
            state[f"model.layers.{i}.{leaf}"] = torch.randn(*shape, generator=g).to(dtype)
    state["model.norm.weight"] = torch.randn(8, generator=g)
    state["lm_head.weight"] = torch.randn(50, 8, generator=g).to(torch.bfloat16)
    state["step"] = torch.tensor(7, dtype=torch.int64)
    return state


@pytest.mark.parametrize("bucket_bytes", [1, 700, 4000, 1 << 30])
def test_buckets_keep_layers_whole_and_round_trip(bucket_bytes):
    state = _state()
    plan = sync.plan_buckets(sync.tensor_metas(state), bucket_bytes)
    sent = list(sync.buckets(state.items(), bucket_bytes, "cpu"))
    assert [b.entries for b, _ in sent] == [b.entries for b in plan]  # receivers can allocate in advance
    seen: dict[str, int] = {}
    for i, (bucket, buf) in enumerate(sent):
        assert buf.dtype == torch.uint8 and buf.numel() == bucket.nbytes
        keys = {sync.layer_key(name) for name, *_ in bucket.entries}
        for k in keys:
            assert seen.setdefault(k, i) == i, f"layer {k} split across buckets"
        if len(keys) > 1:  # several layers share a bucket only while they fit
            assert bucket.nbytes <= bucket_bytes
        for name, tensor in sync.unpack(buf, bucket):
            assert tensor.dtype == state[name].dtype and torch.equal(tensor, state[name]), name
            assert tensor.data_ptr() % sync.ALIGN == buf.data_ptr() % sync.ALIGN
    assert sorted(n for b, _ in sent for n, *_ in b.entries) == sorted(state)
    if bucket_bytes == 1:
        assert len(sent) == len(seen)  # one layer (or module) per bucket
    if bucket_bytes == 1 << 30:
        assert len(sent) == 1


def test_backend_choice_and_errors():
    assert weight_sync.choose_backend("auto", colocated=False, cuda=False) == "object_store"
    assert weight_sync.choose_backend("auto", colocated=True, cuda=False) == "object_store"
    assert weight_sync.choose_backend("auto", colocated=False, cuda=True) == "nccl"
    assert weight_sync.choose_backend("auto", colocated=True, cuda=True) == "cuda_ipc"
    assert weight_sync.choose_backend("object_store", colocated=True, cuda=True) == "object_store"
    with pytest.raises(ValueError, match="cuda_ipc needs CUDA"):
        weight_sync.choose_backend("cuda_ipc", colocated=True, cuda=False)
    with pytest.raises(ValueError, match="cuda_ipc needs cluster.placement=colocated"):
        weight_sync.choose_backend("cuda_ipc", colocated=False, cuda=True)
    with pytest.raises(ValueError, match="nccl needs CUDA"):
        weight_sync.choose_backend("nccl", cuda=False)
    with pytest.raises(ValueError, match="use cuda_ipc"):
        weight_sync.choose_backend("nccl", colocated=True, cuda=True)
    with pytest.raises(ValueError, match="must be one of"):
        weight_sync.choose_backend("gloo")


RELOAD_SCRIPT = textwrap.dedent('''
    import json, os, sys
    from rlvr.runtime import actor_env
    os.environ.update(actor_env(sys.argv[2]))
    import torch
    from rlvr.weight_sync import buckets as sync
    from rlvr.weight_sync import weight_sync_error
    from rlvr.models.tiny import build_tiny_model
    hf = build_tiny_model(sys.argv[1], seed=3)
    from rlvr.rollout.engine import VLLMEngine
    engine = VLLMEngine(sys.argv[1], seed=0, threads=1)
    old = {k: v.clone() for k, v in hf.state_dict().items()}
    torch.manual_seed(1)
    with torch.no_grad():  # new weights for the same model (tied embeddings stay tied)
        for p in hf.parameters():
            p.add_(0.01 * torch.randn_like(p))
    new = hf.state_dict()
    plan = sync.plan_buckets(sync.tensor_metas(new), 1)  # one layer per bucket: the hardest case
    for bucket, buf in sync.buckets(new.items(), 1, "cpu"):
        engine.load_weights(sync.unpack(buf, bucket))
    got = engine.linear_weights()
    before = weight_sync_error(old, got)
    print(json.dumps({"buckets": len(plan), "compared": sum(k in new for k in got),
                      "worst": weight_sync_error(new, got), "old_vs_new": before}))
''')


@pytest.mark.slow
def test_bucket_by_bucket_reload_into_vllm(tmp_path, cache_dir):
    """vLLM reloads layer by layer; a reload call that carries some layers keeps the others' weights.
    So loading bucket after bucket (as NCCL and CUDA IPC receivers do) ends with exactly the new weights."""
    proc = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path / "model"), str(cache_dir)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["buckets"] >= 6 and result["compared"] >= 20, result
    assert result["worst"] < 1e-6 < result["old_vs_new"], result


# ------------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@needs_cuda
def test_ipc_buckets_between_two_processes_on_one_gpu():
    """rlvr.weight_sync.cuda_ipc's path without vLLM or DeepSpeed: a sender packs buckets on the GPU and hands out
    handles; a second process maps them, checks every tensor and acknowledges before the next bucket."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    handles, acks = ctx.Queue(), ctx.Queue()
    receiver = ctx.Process(target=_ipc_receiver, args=(handles, acks))
    receiver.start()
    try:
        state = {k: v.cuda() for k, v in _state().items()}
        uuid = cuda_ipc.device_uuid()
        n = 0
        for bucket, buf in sync.buckets(state.items(), 700, torch.device("cuda")):
            handles.put((cuda_ipc.ipc_handle(buf), bucket, uuid))
            assert acks.get(timeout=120) == "ok"
            del buf
            torch.cuda.ipc_collect()
            n += 1
        handles.put(None)
        assert acks.get(timeout=60) == f"done {n}"
    finally:
        receiver.join(60)
        if receiver.is_alive():
            receiver.kill()


def _ipc_receiver(handles, acks):
    import torch

    from rlvr.weight_sync import cuda_ipc
    from rlvr.weight_sync.buckets import unpack

    expected = {k: v.cuda() for k, v in _state().items()}
    count = 0
    while (msg := handles.get(timeout=120)) is not None:
        handle, bucket, uuid = msg
        buf = cuda_ipc.open_ipc_handle(handle, sender_uuid=uuid)
        ok = all(torch.equal(t, expected[name]) for name, t in unpack(buf, bucket))
        torch.cuda.synchronize()
        del buf
        count += 1
        acks.put("ok" if ok else "mismatch")
    acks.put(f"done {count}")


@pytest.mark.gpu
@needs_cuda
def test_ipc_handle_from_another_gpu_is_refused():
    buf = torch.zeros(16, dtype=torch.uint8, device="cuda")
    with pytest.raises(RuntimeError, match="needs both on one GPU"):
        cuda_ipc.open_ipc_handle(cuda_ipc.ipc_handle(buf), sender_uuid="GPU-not-this-one")


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
@pytest.mark.parametrize("zero_stage,ranks", [(2, 1), (3, 2)])
def test_colocated_cuda_ipc_run(tmp_path, cache_dir, zero_stage, ranks):
    """The real stack, colocated: trainer rank i and vLLM worker i on one GPU (half of it each), vLLM asleep
    while the trainer works, weights handed over by CUDA IPC (chosen by `auto`); vLLM holds the trainer's
    weights after every sync."""
    if torch.cuda.device_count() < ranks:
        pytest.skip(f"needs {ranks} CUDA devices")
    from tests.system.helpers import read_metrics, run_train

    out = tmp_path / "run"
    proc = run_train(out, cache_dir, "cluster.placement=colocated", "cluster.gpus_per_actor=1",
                     f"trainer.num_ranks={ranks}", f"rollout.num_workers={ranks}", f"trainer.zero_stage={zero_stage}",
                     "trainer.check_weight_sync=true", "model.dtype=float32", "rollout.gpu_memory_utilization=0.3")
    assert "weight sync: cuda_ipc" in proc.stdout
    for m in read_metrics(out):
        assert m["mismatch/weight_sync_max_abs"] < 1e-5
        print(f"cuda_ipc sync {1000 * m['perf/sync_s']:.1f} ms")

"""mode="ray": a few quick checks on a local 2-CPU Ray instance kept on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from rlvr.verifier import make_verifier, verify_one

GOOD = (r"so $\boxed{\frac{1}{2}}$", "0.5")
HANG = (r"\boxed{\Gamma(10000000)}", "5")


@pytest.fixture(scope="module")
def ray_local():
    tmp = tempfile.mkdtemp(prefix="rlvr-ray-")
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_TMPDIR", "TMPDIR")}
    # Loopback only. Ray reads this variable when it is first imported, so set it before the import,
    # and set the constant too in case another test module imported Ray already.
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_TMPDIR=tmp, TMPDIR=tmp)
    ray = pytest.importorskip("ray")
    from ray._private import ray_constants

    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    owned = not ray.is_initialized()  # another test module may have started Ray already: reuse it
    if owned:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        assert ray.util.get_node_ip_address() == "127.0.0.1"
    try:
        yield ray
    finally:
        if owned:
            ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


def test_ray_mode_contract_and_hard_timeout(ray_local):
    with make_verifier("ray", workers=2, timeout_s=1.0) as v:
        batch = [GOOD, HANG, (r"Answer: 7", "#### 8"), ("x" * 30000, "1"), ("I could not solve it.", "1"),
                 (r"\boxed{(1,2)}", "(1, 2)")]
        t0 = time.monotonic()
        res = v.verify([b[0] for b in batch], [b[1] for b in batch])
        assert time.monotonic() - t0 < 90
        assert len(res) == len(batch)
        assert res[1].reason == "timeout"
        for i in (0, 2, 3, 4, 5):
            assert res[i].to_dict() == verify_one(*batch[i]).to_dict()
        # the actor that hit the hang keeps serving
        res = v.verify([GOOD[0]] * 8, [GOOD[1]] * 8)
        assert [r.reason for r in res] == ["correct"] * 8
        st = v.stats()
        assert st["actors"] == 2 and sum(a.get("workers_killed_timeout", 0) for a in st["per_actor"]) == 1


def test_ray_actor_death_is_contained(ray_local):
    with make_verifier("ray", workers=1, timeout_s=5.0) as v:
        assert v.verify([GOOD[0]], [GOOD[1]])[0].reason == "correct"
        dead = v._actors[0]
        ray_local.kill(dead, no_restart=True)
        deadline = time.monotonic() + 30
        while True:  # ray.kill is asynchronous: wait until the actor is really gone
            try:
                ray_local.get(dead.stats.remote(), timeout=5)
            except Exception:  # noqa: BLE001 -- RayActorError once it is dead
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        res = v.verify([GOOD[0], GOOD[0]], [GOOD[1], GOOD[1]])
        assert [r.reason for r in res] == ["error", "error"]  # the dead actor's items
        assert v.stats()["actors_replaced"] == 1
        assert v.verify([GOOD[0]], [GOOD[1]])[0].reason == "correct"  # the replacement serves

"""Placement for real: a two-node Ray cluster on this machine, and colocated placement.

The cluster is started the way users start one (scripts/ray_head.sh, scripts/ray_worker.sh), with a
head and a second node on two loopback addresses (Ray keeps 127.0.0.2/127.0.0.3; it would swap
127.0.0.1 for the external address), each with 1 CPU: the 4 bundles of 0.5 CPU (2 trainer ranks,
2 vLLM workers) cannot fit on one node, so the run spans both. Each node has its own temp dir and a
private auth token, and only this cluster's processes are stopped (`ray stop` would stop every Ray on
the machine): SIGTERM to each `ray start --block`, which takes its node's processes down with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from .helpers import read_metrics, run_train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))  # Ray's GCS listens on every interface
        return s.getsockname()[1]


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so a killed test run still takes its
    nodes down (`ray start --block` stops its node's processes on SIGTERM)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def placement_record(stdout: str) -> dict:
    """The driver's `[rlvr] placement: {...}` line (rlvr.orchestrator.placement.Placement)."""
    lines = [line for line in stdout.splitlines() if line.startswith("[rlvr] placement: ")]
    assert lines, "no placement line in the run's output"
    return json.loads(lines[-1].removeprefix("[rlvr] placement: "))


class TwoNodeCluster:
    """A Ray head and a second node on this machine, started with the project's scripts."""

    def __init__(self, base: Path):
        # Ray puts Unix sockets at <dir>/<node>/session_<date>_<time>_<pid>/sockets/plasma_store, about 75
        # characters below the dir, and refuses paths over 107: a checkout's cache dir can be too deep
        # (CI's /check/work/main/.cache/tests was), so the dir is short whatever the checkout's path.
        root = base if len(str(base)) <= 16 else Path("/tmp")
        self.dir = Path(tempfile.mkdtemp(prefix="rmn", dir=root))
        self.port = _free_port()
        self.address = f"{HEAD_IP}:{self.port}"
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}  # never ~/.ray/auth_token
        self.procs: list[subprocess.Popen] = []

    def _start(self, name: str, cmd: list[str], ip: str) -> None:
        env = dict(os.environ, **self.env, RAY_NODE_IP=ip, RAY_PORT=str(self.port),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        env.pop("RAY_ADDRESS", None)
        # an in-process local Ray (start_ray, earlier tests) sets this to 0, which forbids joining a head
        env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        log = open(self.dir / f"{name}.log", "w")
        proc = subprocess.Popen(["bash", *cmd, "--block", f"--temp-dir={self.dir / name}", "--num-cpus=1",
                                 f"--resources={json.dumps({f'rlvr_{name}': 1})}", "--object-store-memory=200000000",
                                 f"--dashboard-agent-listen-port={_free_port()}"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_term_with_parent)
        self.procs.append(proc)
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (self.dir / f"{name}.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {name} did not start:\n{self.logs()}")
            time.sleep(0.5)

    def __enter__(self) -> "TwoNodeCluster":
        try:
            self._start("head", ["scripts/ray_head.sh", "--include-dashboard=false",
                                 f"--ray-client-server-port={_free_port()}"], HEAD_IP)
            self._start("node", ["scripts/ray_worker.sh", self.address], NODE_IP)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.dir.glob("*.log")))

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the second node first, then the head
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        leftovers = self.processes()
        for pid in leftovers:  # only processes started for this cluster: their command line names its dir
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.leftovers = leftovers

    def processes(self) -> list[int]:
        mine = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if str(self.dir).encode() in (entry / "cmdline").read_bytes():
                        mine.append(int(entry.name))
                except OSError:
                    pass
        return mine


@pytest.fixture(scope="module")
def two_nodes(cache_dir):
    start = time.perf_counter()
    with TwoNodeCluster(cache_dir) as cluster:
        print(f"two-node cluster up in {time.perf_counter() - start:.1f}s at {cluster.address}")
        yield cluster
    assert not cluster.leftovers, f"processes of the test cluster outlived it: {cluster.leftovers}"
    assert not cluster.processes()
    shutil.rmtree(cluster.dir, ignore_errors=True)  # session logs (kept when a node or the teardown failed)


def train_on(cluster: TwoNodeCluster, monkeypatch, out: Path, cache_dir: Path, *overrides: str):
    for key, value in cluster.env.items():  # the driver needs the cluster's token
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    t0 = time.perf_counter()
    proc = run_train(out, cache_dir, f"cluster.address={cluster.address}", "rollout.num_workers=2",
                     "trainer.num_ranks=2", "trainer.check_weight_sync=true", *overrides, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{cluster.logs()}"
    summary = json.loads((out / "summary.json").read_text())
    metrics = read_metrics(out)
    assert summary["steps"] == 2 and len(metrics) == 2
    for m in metrics:
        assert m["rollout/samples"] == 4 * 4
        assert m["mismatch/weight_sync_max_abs"] < 1e-5  # both vLLM workers hold the trainer's weights
    record = placement_record(proc.stdout)
    assert set(record["nodes"].values()) == {HEAD_IP, NODE_IP}, record
    return record, time.perf_counter() - t0


def sync_ms(out: Path) -> str:
    return "/".join(f"{1000 * m['perf/sync_s']:.0f}" for m in read_metrics(out)) + " ms"


def test_two_nodes_two_workers_two_ranks(two_nodes, tmp_path, cache_dir, monkeypatch):
    """Disaggregated: 4 bundles of 0.5 CPU on two 1-CPU nodes, two actors on each."""
    record, seconds = train_on(two_nodes, monkeypatch, tmp_path / "run", cache_dir)
    assert record["mode"] == "disaggregated"
    used = record["trainer_nodes"] + record["rollout_nodes"]
    assert sorted(used.count(n) for n in set(used)) == [2, 2], record
    print(f"two-node run, disaggregated: {seconds:.1f}s, weight sync {sync_ms(tmp_path / 'run')}; trainer ranks on "
          f"{[record['nodes'][n] for n in record['trainer_nodes']]}, vLLM workers on "
          f"{[record['nodes'][n] for n in record['rollout_nodes']]}")


def test_colocated_placement_across_two_nodes(two_nodes, tmp_path, cache_dir, monkeypatch):
    """Colocated on CPU: trainer rank i and vLLM worker i share bundle i (1 CPU: one bundle per node), so the
    two trainer ranks form their torch.distributed group across the nodes. (vLLM cannot sleep on CPU.)"""
    record, seconds = train_on(two_nodes, monkeypatch, tmp_path / "run", cache_dir, "cluster.placement=colocated")
    assert record["mode"] == "colocated"
    assert record["trainer_bundles"] == record["rollout_bundles"] == [0, 1], record
    assert record["trainer_nodes"] == record["rollout_nodes"], record
    assert len(set(record["trainer_nodes"])) == 2, record
    print(f"two-node run, colocated: {seconds:.1f}s, weight sync {sync_ms(tmp_path / 'run')}; "
          f"pairs on {[record['nodes'][n] for n in record['trainer_nodes']]}")

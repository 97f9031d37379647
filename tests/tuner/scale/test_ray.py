"""Worker actors on a real local Ray cluster: a head without GPUs and two nodes that declare
two logical GPUs each (this machine has none: Ray's bookkeeping of them is real, torch
cannot use them, so the workers are told ``--device cpu`` and each actor reports the device
Ray's assignment gives, ``cuda:0``, which is what is asserted).

One cluster for the module (starting Ray costs seconds); the node-loss test removes a node,
so it runs last.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

import storage
from tests.harness import ROOT, server_env
from tuner.scale import IDLE, STOPPED, PoolSummary, RayPool, RayWorkers
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.worker import WorkerConfig

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.postgres
DEADLINE_S = 120.0
MIB = 1024**2


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head (no CPU or GPU for actors) and two nodes of 2 CPUs and 2 logical GPUs each;
    this process is its driver. What Ray changes in the process (environment variables, a
    SIGTERM handler) is put back afterwards."""
    environ, on_sigterm = dict(os.environ), signal.getsignal(signal.SIGTERM)
    # the nodes' worker processes import this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # nothing to report, nowhere to send it
    lean = {"object_store_memory": 80 * MIB}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False, **lean},
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2, num_gpus=2, **lean)
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        os.environ.clear()
        os.environ.update(environ)
        signal.signal(signal.SIGTERM, on_sigterm)


def _study(db_url: str, name: str, n_trials: int, gate: Path | None = None) -> None:
    """A tiny study; with ``gate``, every trial waits for that file before it trains."""
    task: dict[str, Any] = {"hidden": [8], "dataset": "synthetic"}
    if gate is not None:  # digits through its own loop, which reports val_loss
        task = {"plugin": "gated", "gate": str(gate), "open_trials": 0}
    spec = {
        "name": name,
        "task": task,
        "metric": "val_loss",
        "direction": "minimize",
        "search": {"initializer": ["xavier_uniform", "kaiming_normal"], "lr": 0.05,
                   "batch_size": 64, "patience": 50},
        "budget": {"n_trials": n_trials, "max_epochs": 2, "max_retries": 2},
        "pruner": "none",
    }  # fmt: skip
    db = storage.Database(db_url)
    try:
        db.upgrade()
        submit_study(db, parse_spec(spec))
    finally:
        db.dispose()


def _config() -> WorkerConfig:
    return WorkerConfig(device="cpu", exit_when_idle=True, heartbeat_interval=0.5, grace=3.0,
                        poll_interval=0.2, population=1)  # fmt: skip


def _runs(db_url: str, name: str) -> list[Any]:
    db = storage.Database(db_url)
    try:
        with db.engine.connect() as conn:
            return list(
                conn.exec_driver_sql(
                    "SELECT id, state, worker, finished_at IS NULL AS unsettled, trial_number"
                    " FROM tuner_trial_runs WHERE study_name = %(n)s ORDER BY id",
                    {"n": name},
                ).all()
            )
    finally:
        db.dispose()


def _pid(worker: str | None) -> int:
    """The process of a worker named ``host:pid:tag``."""
    return int(worker.split(":")[1]) if worker else -1


def _await(condition: Callable[[], bool], what: str, db_url: str, name: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}: {_runs(db_url, name)}"
        time.sleep(0.1)


def _ended_exact(db_url: str, name: str, n_trials: int) -> dict[str, int]:
    """Asserts the study completed with exactly its budget done, nothing left running,
    pending or unsettled, and one results row for every run that reached Optuna (a run lost
    before it asked Optuna for its trial has none: it simply runs again); returns its runs
    by state."""
    runs = _runs(db_url, name)
    db = storage.Database(db_url)
    try:
        with db.session() as session:
            record = storage.get_study_record(session, name)
            rows = storage.list_trial_results(session, name, limit=100)
        study = optuna.load_study(study_name=name, storage=db.optuna_storage())
    finally:
        db.dispose()
    states = collections.Counter(r.state for r in runs)
    assert record is not None and record.status == "completed"
    assert states["done"] == n_trials, runs
    assert set(states) <= {"done", "retried"} and not any(r.unsettled for r in runs), runs
    asked = sorted(r.trial_number for r in runs if r.trial_number is not None)
    assert sorted(r.trial_number for r in rows) == asked  # no lost row, none twice
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    return dict(states)


def test_replicas_land_on_the_gpus_ray_assigned_and_the_study_ends_exact(
    cluster: Cluster, postgres_url: str
) -> None:
    _study(postgres_url, "placed", n_trials=6)
    gpu_nodes = {node.node_id for node in cluster.worker_nodes}
    settings = RayWorkers(replicas=4, gpus_per_worker=0.5, cpus_per_worker=0.5, max_restarts=0)
    with RayPool(settings, postgres_url, _config()) as pool:
        placements = pool.placements()
        summary = pool.run()
    # Ray's assignment, as each actor saw it: one GPU, the only one visible, so cuda:0
    assert [p.index for p in placements] == [0, 1, 2, 3]
    for p in placements:
        assert len(p.gpu_ids) == 1 and p.visible_devices == p.gpu_ids[0]
        assert p.assigned_device == "cuda:0" and p.device == "cpu"  # told to train on the CPU
    shares = collections.Counter((p.node_id, p.gpu_ids[0]) for p in placements)
    assert max(shares.values()) <= 2  # half a GPU each: at most two workers share one
    assert {p.node_id for p in placements} == gpu_nodes  # spread over both GPU nodes
    # every worker ran in the actor that reported the placement, and stopped when idle
    assert [r.ended for r in summary.reports] == [IDLE] * 4 and not summary.failed
    assert [_pid(r.worker) for r in summary.reports] == [p.pid for p in placements]
    assert summary.trials == 6
    _ended_exact(postgres_url, "placed", 6)
    workers = {r.worker for r in _runs(postgres_url, "placed")}
    assert workers <= {r.worker for r in summary.reports}


def test_the_command_stops_its_actors_cleanly_on_sigterm(
    cluster: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    """SIGTERM to ``tuner worker --ray``: every actor stops claiming and hands its running
    trial back (queued again, no retry spent); the command ends with its summary."""
    gate = tmp_path / "gate"
    _study(postgres_url, "stopped", n_trials=4, gate=gate)
    command = [
        str(Path(sys.executable).with_name("tuner")), "worker", "--database-url", postgres_url,
        "--ray-address", cluster.address, "--replicas", "2", "--gpus-per-worker", "0.5",
        "--cpus-per-worker", "0.5", "--device", "cpu", "--population", "1",
        "--heartbeat-interval", "0.5", "--grace", "3", "--exit-when-idle",
    ]  # fmt: skip
    log = tmp_path / "driver.log"
    with log.open("wb") as out:
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=server_env())
    try:
        _await(
            lambda: sum(r.state == "running" for r in _runs(postgres_url, "stopped")) == 2,
            "both actors to hold a run (at the gate)", postgres_url, "stopped",
        )  # fmt: skip
        driver.send_signal(signal.SIGTERM)
        _await(
            lambda: "stopping 2 worker actor(s)" in log.read_text(),
            "the actors to hear the stop", postgres_url, "stopped",
        )  # fmt: skip
        gate.touch()  # the trials train their first epoch, then see the stop
        assert driver.wait(timeout=DEADLINE_S) == 0, log.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    output = log.read_text()
    # a trial handed back is not one a worker ran: its row says it was handed back
    assert "2 worker actor(s) ended: 0 trial(s) recorded" in output, output
    assert output.count(f"  {STOPPED}") == 2, output
    runs = collections.Counter(r.state for r in _runs(postgres_url, "stopped"))
    assert runs == {"retried": 2, "pending": 2}  # handed back and queued again, none lost
    db = storage.Database(postgres_url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, "stopped", limit=10)
            record = storage.get_study_record(session, "stopped")
    finally:
        db.dispose()
    assert record is not None and record.status == "running"  # its budget still to run
    assert [r.error for r in rows] == ["handed back: the worker was stopped"] * 2


def test_a_node_lost_mid_study_leaves_its_trials_to_the_leases(
    cluster: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    """A node removed while its actor holds a run (spread: one actor a node): Ray restarts
    the actor on the other node, a worker there reaps the lost run and runs it again, and the
    study ends exact."""
    gate = tmp_path / "gate"
    _study(postgres_url, "lost", n_trials=3, gate=gate)
    settings = RayWorkers(replicas=2, gpus_per_worker=0.5, cpus_per_worker=0.5, max_restarts=2)
    ended: list[PoolSummary] = []
    with RayPool(settings, postgres_url, _config()) as pool:
        placements = pool.placements()
        doomed = next(n for n in cluster.worker_nodes if n.node_id == placements[0].node_id)
        pids = {p.pid for p in placements if p.node_id == doomed.node_id}
        assert len(pids) == 1  # spread: one actor a node
        driver = threading.Thread(target=lambda: ended.append(pool.run()), daemon=True)
        driver.start()

        def held_there() -> bool:  # the actor on the doomed node holds a run, at the gate
            held = {_pid(r.worker) for r in _runs(postgres_url, "lost") if r.state == "running"}
            return pids <= held

        _await(held_there, "the doomed node's actors to hold runs", postgres_url, "lost")
        cluster.remove_node(doomed)
        gate.touch()
        driver.join(timeout=DEADLINE_S)
        assert not driver.is_alive(), f"the pool did not end: {_runs(postgres_url, 'lost')}"
    (summary,) = ended
    assert [r.ended for r in summary.reports] == [IDLE] * 2 and not summary.failed
    restarted = [r.placement for r in summary.reports if r.placement and r.placement.restarted]
    assert len(restarted) == len(pids)  # Ray restarted each actor the node took with it...
    assert all(p.node_id != doomed.node_id for p in restarted)  # ...on the node left
    runs = _ended_exact(postgres_url, "lost", 3)
    lost = [r for r in _runs(postgres_url, "lost") if r.state == "retried"]
    assert runs.get("retried") == len(pids) == len(lost)  # its runs, each run again once
    assert {_pid(r.worker) for r in lost} == pids

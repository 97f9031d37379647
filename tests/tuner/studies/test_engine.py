"""The embedded engine on real storage (SQLite and PostgreSQL): every trial ends recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import storage
from tuner.errors import DeviceLost, SpecError, TunerError
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.training import EpochStats
from tuner.worker import PARAMS_ATTR, RunObserver, _assembly


def _spec(name: str = "eng", **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "name": name,
        "task": {"model": "mlp", "hidden": [32], "dataset": "digits"},
        "search": {
            "initializer": ["xavier_normal", "kaiming_normal"],
            "lr": {"low": 0.01, "high": 0.2, "log": True},
            "batch_size": [64, 128],
            "patience": 2,
        },
        "budget": {"n_trials": 3, "max_epochs": 3},
        "pruner": "none",
    }
    data.update(overrides)
    return parse_spec(data)


def _rows(url: str, name: str) -> list[storage.TrialResult]:
    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, name, order_by="trial_number")
            session.expunge_all()
            return rows
    finally:
        db.dispose()


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _status(url: str, name: str) -> str:
    db = storage.Database(url)
    try:
        with db.session() as session:
            record = storage.get_study_record(session, name)
            assert record is not None
            return record.status
    finally:
        db.dispose()


def test_run_writes_a_row_per_trial_and_optuna_sees_them(database_url: str) -> None:
    summary = run_study(_spec(), database_url=database_url)
    assert (summary.finished, summary.ran, summary.complete) == (3, 3, True)
    rows = _rows(database_url, "eng")
    assert [r.trial_number for r in rows] == [0, 1, 2]
    for row in rows:
        assert row.state == "complete" and row.stop_reason in ("patience", "max_epochs")
        assert row.value is not None and 0.5 < row.value <= 1.0
        assert row.initializer in ("xavier_normal", "kaiming_normal")
        assert row.device == "cpu" and row.worker and row.duration_s > 0
        assert 1 <= (row.best_epoch or 0) <= row.epochs_run <= 3
        assert row.params_json["seeds"]["init"] != row.params_json["seeds"]["data"]
    trials = _study(database_url, "eng").trials
    assert [t.value for t in trials] == [r.value for r in rows]
    assert all(
        len(t.intermediate_values) == r.epochs_run for t, r in zip(trials, rows, strict=True)
    )
    assert _status(database_url, "eng") == "completed"


def test_resume_adds_trials_and_a_finished_study_runs_nothing(database_url: str) -> None:
    run_study(_spec(), database_url=database_url, n_trials=2)
    again = run_study(_spec(), database_url=database_url, n_trials=4)
    assert (again.finished, again.ran) == (4, 2)
    done = run_study(_spec(), database_url=database_url, n_trials=4)
    assert (done.ran, done.complete) == (0, True)
    assert len(_rows(database_url, "eng")) == 4
    # resumed runs do not replay the first run's suggestions
    params = [(r.initializer, r.lr, r.batch_size) for r in _rows(database_url, "eng")]
    assert len(set(params)) == 4


def test_a_changed_definition_under_the_same_name_is_refused(database_url: str) -> None:
    run_study(_spec(), database_url=database_url, n_trials=1)
    changed = _spec(search={"initializer": "orthogonal", "lr": 0.1})
    with pytest.raises(TunerError, match=r"another definition; changed: search\.batch_size"):
        run_study(changed, database_url=database_url)


def test_an_edited_budget_is_named_and_runs_only_when_accepted(database_url: str) -> None:
    """Editing max_epochs (or min_delta, max_retries, timeout_s) used to be silently ignored."""
    run_study(_spec(budget={"n_trials": 3, "max_epochs": 1}), database_url=database_url, n_trials=1)
    edited = _spec(budget={"n_trials": 3, "max_epochs": 3, "min_delta": 0.01})
    with pytest.raises(TunerError) as refused:
        run_study(edited, database_url=database_url, n_trials=2)
    assert "budget.max_epochs: 1 -> 3" in str(refused.value)
    assert "budget.min_delta: 0.0 -> 0.01" in str(refused.value)
    assert len(_rows(database_url, "eng")) == 1  # nothing ran
    run_study(edited, database_url=database_url, n_trials=2, accept_changes=True)
    rows = _rows(database_url, "eng")
    assert [r.manifest_json["train"]["max_epochs"] for r in rows] == [1, 3]  # what each ran
    (change,) = _study(database_url, "eng").user_attrs["tuner_changes"]
    assert "budget.max_epochs: 1 -> 3" in change["changed"]
    run_study(edited, database_url=database_url, n_trials=3)  # now the stored definition


def test_divergence_is_recorded_not_raised(database_url: str) -> None:
    spec = _spec(
        "div",
        search={"initializer": {"name": "normal", "std": 50.0}, "lr": 1e4, "patience": 2},
        budget={"n_trials": 1, "max_epochs": 5},
    )
    run_study(spec, database_url=database_url)
    (row,) = _rows(database_url, "div")
    assert row.stop_reason == "diverged"
    assert row.state == ("fail" if row.value is None else "complete")
    assert _study(database_url, "div").trials[0].state.name == row.state.upper()


def test_pruned_trials_are_recorded(database_url: str) -> None:
    pruner = {"name": "percentile", "options": {"percentile": 99.0, "n_startup_trials": 1}}
    spec = _spec("prn", pruner=pruner, budget={"n_trials": 4, "max_epochs": 4})
    run_study(spec, database_url=database_url)
    rows = _rows(database_url, "prn")
    pruned = [r for r in rows if r.state == "pruned"]
    assert pruned and all(r.stop_reason == "pruned" for r in pruned)
    assert all(r.epochs_run < 4 or r.best_epoch for r in pruned)


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError("a bug in the user's code"), "ValueError: a bug"),
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
            "out of memory",
        ),
    ],
)
def test_an_exception_in_a_trial_is_a_failed_row_and_the_run_goes_on(
    database_url: str, exc: Exception, message: str
) -> None:
    spec = _spec(
        "err",
        search={"initializer": {"name": "lsuv", "max_iter": 3}, "lr": 0.05},
        task={"plugin": "xor-blobs", "n": 200},
        budget={"n_trials": 2, "max_epochs": 2},
    )

    class Boom(RunObserver):
        def epoch_finished(self, number: int, stats: EpochStats) -> None:
            if number == 0:
                raise exc

    summary = run_study(spec, database_url=database_url, observer=Boom())
    assert summary.finished == 2
    rows = _rows(database_url, "err")  # trial 1 may run beside trial 0 (a population)
    failed = next(r for r in rows if r.state == "fail")
    retry, other = sorted(
        (r for r in rows if r is not failed), key=lambda r: r.params_json != failed.params_json
    )
    assert (failed.state, failed.stop_reason, failed.value) == ("fail", "error", None)
    assert failed.error is not None and message in failed.error and "retrying" in failed.error
    # the retry runs the same configuration with the same seeds
    assert retry.state == "complete" and retry.params_json == failed.params_json
    assert other.state == "complete" and other.params_json["seeds"] != failed.params_json["seeds"]


def test_a_cuda_error_ends_the_run_with_the_trial_handed_back_not_failed(
    database_url: str,
) -> None:
    """A CUDA error (not an OOM) poisons the device: the run stops saying so, and the trial
    is queued again, unspent, for a worker whose device still works."""
    spec = _spec("lost", budget={"n_trials": 2, "max_epochs": 2, "max_retries": 0})

    class Boom(RunObserver):
        def epoch_finished(self, number: int, stats: EpochStats) -> None:
            raise RuntimeError("CUDA error: an illegal memory access")

    with pytest.raises(DeviceLost, match="CUDA error"):
        run_study(spec, database_url=database_url, observer=Boom())
    db = storage.Database(database_url)
    try:
        with db.session() as session:
            runs = storage.count_runs_by_state(session, "lost")
            record = storage.get_study_record(session, "lost")
    finally:
        db.dispose()
    assert runs.get("pending", 0) >= 1 and runs.get("running", 0) == 0
    assert record is not None and record.status != "failed"
    assert not [r for r in _rows(database_url, "lost") if r.state == "complete"]


def test_errors_are_not_retried_past_max_retries(database_url: str) -> None:
    spec = _spec("nore", budget={"n_trials": 1, "max_epochs": 2, "max_retries": 0})

    class Boom(RunObserver):
        def epoch_finished(self, number: int, stats: EpochStats) -> None:
            raise RuntimeError("always broken")

    summary = run_study(spec, database_url=database_url, observer=Boom())
    (row,) = _rows(database_url, "nore")
    assert (summary.finished, row.state, row.stop_reason) == (1, "fail", "error")
    assert row.error is not None and "retrying" not in row.error


def test_timeout_stops_the_run_and_leaves_it_resumable(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec("tmo", budget={"n_trials": 5, "max_epochs": 3, "timeout_s": 3600})

    class Expire(RunObserver):  # the limit passes during the first epoch of the first trial
        def epoch_finished(self, number: int, stats: EpochStats) -> None:
            monkeypatch.setattr(_assembly, "_clock", lambda: float("inf"))

    # one trial at a time (population=1): the limit ends the one running trial
    summary = run_study(spec, database_url=database_url, observer=Expire(), population=1)
    assert (summary.ran, summary.timed_out, summary.complete) == (1, True, False)
    (row,) = _rows(database_url, "tmo")
    assert (row.stop_reason, row.epochs_run, row.state) == ("timeout", 1, "complete")
    assert _status(database_url, "tmo") == "running"  # not completed: a rerun goes on
    monkeypatch.undo()
    again = run_study(spec, database_url=database_url)
    assert (again.finished, again.complete) == (5, True)


def test_an_interrupt_records_the_running_trial_then_propagates(database_url: str) -> None:
    class CtrlC(RunObserver):
        def epoch_finished(self, number: int, stats: EpochStats) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # one trial at a time: one is running
        run_study(_spec("int"), database_url=database_url, observer=CtrlC(), population=1)
    (row,) = _rows(database_url, "int")
    assert (row.state, row.stop_reason, row.error) == ("fail", "error", "interrupted")
    assert _study(database_url, "int").trials[0].state == optuna.trial.TrialState.FAIL


def _crashed_run(url: str, name: str, dead_worker: str) -> tuple[optuna.Study, int, int]:
    """What a worker killed mid-trial leaves: a claimed run and a RUNNING Optuna trial."""
    db = storage.Database(url)
    with db.session() as session:
        record = storage.get_study_record(session, name)
        assert record is not None
        storage.set_study_budget(session, name, record.n_trials + 1)
        claim = storage.claim_run(session, worker=dead_worker, device="cpu", studies=[name])
    assert claim is not None
    study = _study(url, name)
    trial = study.ask()
    trial.suggest_categorical("initializer", ["xavier_normal", "kaiming_normal"])
    trial.suggest_float("lr", 0.01, 0.2, log=True)
    trial.suggest_categorical("batch_size", [64, 128])
    params = {"initializer": "xavier_normal", "initializer_name": "xavier_normal",
              "init_params": {}, "lr": trial.params["lr"], "weight_decay": 0.0,
              "batch_size": trial.params["batch_size"], "patience": 2}  # fmt: skip
    trial.set_user_attr(PARAMS_ATTR, {"params": params, "worker": dead_worker, "device": "cpu"})
    with db.session() as session:
        storage.set_run_trial(session, claim.run_id, trial.number)
    trial.report(0.5, 1)
    db.dispose()
    return study, trial.number, claim.run_id


def _dead_worker_name() -> str:
    import socket

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return f"{socket.gethostname()}:{dead}:dead"


def test_a_trial_whose_worker_died_is_recorded_and_retried(database_url: str) -> None:
    spec = _spec("rec", budget={"n_trials": 3, "max_epochs": 2})
    run_study(spec, database_url=database_url, n_trials=1)
    _, number, _ = _crashed_run(database_url, "rec", _dead_worker_name())
    summary = run_study(spec, database_url=database_url)
    rows = {r.trial_number: r for r in _rows(database_url, "rec")}
    lost = rows[number]
    assert (lost.state, lost.stop_reason, lost.epochs_run) == ("fail", "error", 1)
    assert lost.error is not None and "lost" in lost.error and "retrying" in lost.error
    retries = [r for r in rows.values() if r.trial_number > number and r.lr == lost.lr]
    assert retries and retries[0].state == "complete"  # same configuration, run again
    assert summary.finished == 3  # exactly the budget: the lost attempt does not count
    assert _study(database_url, "rec").trials[number].state == optuna.trial.TrialState.FAIL


def test_a_stale_heartbeat_alone_marks_the_run_lost(database_url: str) -> None:
    """A worker on another machine went silent: only its heartbeat can tell."""
    spec = _spec("far", budget={"n_trials": 2, "max_epochs": 2})
    run_study(spec, database_url=database_url, n_trials=1)
    _, number, _ = _crashed_run(database_url, "far", "elsewhere:4242:gone")
    summary = run_study(spec, database_url=database_url, heartbeat_interval=0.05, grace=0.3)
    rows = {r.trial_number: r for r in _rows(database_url, "far")}
    assert rows[number].state == "fail" and "no heartbeat" in (rows[number].error or "")
    assert summary.finished == 2 and len(rows) == 3


def test_a_result_told_to_optuna_but_not_written_is_restored(database_url: str) -> None:
    spec = _spec("res", budget={"n_trials": 2, "max_epochs": 2})
    run_study(spec, database_url=database_url, n_trials=1)
    _, number, _ = _crashed_run(database_url, "res", _dead_worker_name())
    kept = _rows(database_url, "res")[0]
    row = storage.TrialResultData(
        study_name="res", trial_number=number, state="complete", stop_reason="patience",
        initializer="xavier_normal", lr=0.05, weight_decay=0.0, batch_size=64, patience=2,
        value=0.9, best_epoch=1, epochs_run=1, duration_s=1.0, worker="w", device="cpu",
        started_at=kept.started_at, finished_at=kept.finished_at, params_json={},
    )  # fmt: skip
    backend = optuna.storages.RDBStorage(database_url)
    trial_id = backend.get_trial_id_from_study_id_trial_number(
        backend.get_study_id_from_name("res"), number
    )
    backend.set_trial_user_attr(trial_id, "tuner_result", row.to_json())
    backend.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [0.9])
    backend.engine.dispose()
    summary = run_study(spec, database_url=database_url)
    restored = {r.trial_number: r for r in _rows(database_url, "res")}[number]
    assert (restored.state, restored.value, restored.worker) == ("complete", 0.9, "w")
    assert summary.finished == 2 and summary.ran == 0


def test_trials_reproduce_exactly_on_cpu(tmp_path: Any) -> None:
    values = []
    for i in range(2):
        run_study(_spec("rep"), database_url=f"sqlite:///{tmp_path / f'{i}.db'}")
        values.append(
            [
                (r.lr, r.value, r.epochs_run)
                for r in _rows(f"sqlite:///{tmp_path / f'{i}.db'}", "rep")
            ]
        )
    assert values[0] == values[1]


def test_plugin_spec_checked_against_the_built_model_before_writing(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    spec = _spec("plug", task={"plugin": "xor-blobs"}, search={"initializer": "dirac"})
    with pytest.raises(SpecError, match=r"search\.initializer\[0\]"):
        run_study(spec, database_url=url)
    assert not (tmp_path / "p.db").exists()


def test_grid_walks_every_point_once_and_ends(tmp_path: Any) -> None:
    """Every claim's GridSampler shuffles the grid alike, and a walked grid ends the study."""
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    inits = ["xavier_normal", "kaiming_normal", "orthogonal"]
    spec = _spec(
        "grid",
        search={"initializer": inits, "lr": 0.05, "batch_size": [64, 128], "patience": 1},
        budget={"n_trials": 6, "max_epochs": 1},
        sampler="grid",
    )
    summary = run_study(spec, database_url=url, device="cpu")
    assert summary.complete and summary.finished == 6
    points = {(t.params["initializer"], t.params["batch_size"]) for t in _study(url, "grid").trials}
    assert len(points) == 6


def test_an_explicit_sampler_seed_still_varies_the_trials(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    spec = _spec(
        "seeded", sampler={"name": "random", "seed": 0}, budget={"n_trials": 4, "max_epochs": 1}
    )
    run_study(spec, database_url=url, device="cpu")
    lrs = {t.params["lr"] for t in _study(url, "seeded").trials}
    assert len(lrs) == 4


@pytest.mark.parametrize("fail_at", ["reaper", "requeue"])
def test_a_reaper_that_fails_between_marking_and_requeueing_loses_no_trial(
    database_url: str, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    """The reap marks the run, then settling it fails (the reaper's own error, or the
    database going away before the requeue commits): the run stays unsettled, the next reap
    takes it again, and the study still ends with exactly its budget."""
    from tuner.worker import _leases, _settle

    spec = _spec("reap", budget={"n_trials": 3, "max_epochs": 2})
    run_study(spec, database_url=database_url, n_trials=1)
    _, number, run_id = _crashed_run(database_url, "reap", _dead_worker_name())
    calls: list[int] = []
    real_settle, real_queue = _settle.settle_lost_run, _settle.queue_again

    def settle_once_failing(db: storage.Database, run: storage.LostRun, **kwargs: Any) -> None:
        calls.append(run.run_id)
        if fail_at == "reaper" and len(calls) == 1:
            raise storage.StorageError("injected: the reaper dies after marking the run")
        real_settle(db, run, **kwargs)

    def queue_once_failing(*args: Any, **kwargs: Any) -> None:
        real_queue(*args, **kwargs)
        if len(calls) == 1:  # raised inside the transaction: it rolls back, settle too
            raise storage.StorageError("injected: the database goes away before the commit")

    monkeypatch.setattr(_leases, "settle_lost_run", settle_once_failing)
    if fail_at == "requeue":
        monkeypatch.setattr(_settle, "queue_again", queue_once_failing)
    summary = run_study(spec, database_url=database_url, heartbeat_interval=0.01, grace=0.0)
    assert calls[:2] == [run_id, run_id]  # taken again after the failed settle
    rows = {r.trial_number: r for r in _rows(database_url, "reap")}
    assert rows[number].state == "fail" and "retrying" in (rows[number].error or "")
    assert summary.finished == 3 and _status(database_url, "reap") == "completed"
    db = storage.Database(database_url)
    try:
        with db.session() as session:
            runs = storage.count_runs_by_state(session, "reap")
            assert storage.unsettled_runs(session, ["reap"]) == 0
    finally:
        db.dispose()
    assert runs.get("running", 0) == 0 and runs.get("pending", 0) == 0
    assert not [t for t in _study(database_url, "reap").trials if t.state.name == "RUNNING"]


@pytest.mark.parametrize("population", [1, 4])
def test_optunas_tools_see_the_metric_and_the_trial_attributes(
    database_url: str, population: int
) -> None:
    """The dashboard and `optuna trials` label the value with the study's metric (not
    "Objective 0") and can filter trials on their initializer and stop reason."""
    run_study(_spec("view", budget={"n_trials": 4, "max_epochs": 2}), database_url=database_url,
              population=population)  # fmt: skip
    study = _study(database_url, "view")
    assert study.metric_names == ["val_accuracy"]
    rows = {r.trial_number: r for r in _rows(database_url, "view")}
    for trial in study.trials:
        row = rows[trial.number]
        assert trial.user_attrs["initializer"] == row.initializer
        assert trial.user_attrs["stop_reason"] == row.stop_reason
    out = subprocess.run(
        [Path(sys.executable).with_name("optuna"), "trials", "--study-name", "view",
         "--storage", database_url.replace("postgresql://", "postgresql+psycopg://"), "-f", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert '"value": {"val_accuracy":' in out

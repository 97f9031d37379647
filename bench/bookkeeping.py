"""Per-trial bookkeeping of a worker on PostgreSQL, against plain Optuna's RDB storage.

Bookkeeping is everything a trial costs besides training: claiming it against the
budget, asking Optuna, sampling 5 parameters, 20 epoch reports with pruning checks,
telling the result, the run and results rows, the heartbeat. The objective is trivial
(no training): the worker's real code path runs with ``execute_trial`` replaced by a
function that reports 20 synthetic epochs. The peer is a plain Optuna study on the
same server, same 5 parameters and 20 reports + should_prune, one trial at a time.

    python bench/bookkeeping.py --trials 200

Prints one JSON line. Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import optuna
import psycopg

import storage
import tuner
from tuner import _worker
from tuner._train import EpochStats
from tuner._trial import TrialOutcome

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REPORTS = 20


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"tuner_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def trivial_trial(**kw: Any) -> TrialOutcome:
    """Stands in for training: 20 epochs of made-up figures through the real hook."""
    on_epoch = kw["on_epoch"]
    started = datetime.now(UTC)
    best, reason = 0.0, "max_epochs"
    for epoch in range(1, REPORTS + 1):
        acc = 1.0 - 1.0 / (epoch + 1)
        best = max(best, acc)
        stop = on_epoch(EpochStats(epoch, 1.0 / epoch, 1.0 / epoch, acc))
        if stop is not None:
            reason = stop
            break
    return TrialOutcome(
        number=kw["number"], params=kw["params"], state="pruned" if reason == "pruned"
        else "complete", stop_reason=reason, value=best, best_epoch=epoch, epochs_run=epoch,
        started_at=started, finished_at=datetime.now(UTC), duration_s=0.0, device="cpu",
        seeds={"init": 0, "data": 0},
    )  # fmt: skip


def spec(name: str, n_trials: int) -> tuner.StudySpec:
    return tuner.parse_spec({
        "name": name,
        "task": {"model": "mlp", "hidden": [8], "dataset": "synthetic"},
        "search": {  # the five dimensions, as in DESIGN.md
            "initializer": ["xavier_uniform", "kaiming_normal", "orthogonal", "lsuv"],
            "lr": {"low": 1e-4, "high": 1.0, "log": True},
            "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
            "batch_size": [32, 64, 128, 256],
            "patience": {"low": 2, "high": 10},
        },
        "budget": {"n_trials": n_trials, "max_epochs": REPORTS},
        "sampler": "random",  # bookkeeping, not sampling cost: both sides sample at random
        "pruner": "median",
    })  # fmt: skip


def bench_worker(url: str, n_trials: int) -> dict[str, float]:
    db = storage.Database(url)
    db.upgrade()
    tuner.submit_study(db, spec("bk", n_trials))
    _worker.execute_trial = trivial_trial  # type: ignore[assignment]
    durations: list[float] = []

    class Clock(tuner.RunObserver):
        def trial_started(self, number: int, params: dict[str, Any]) -> None: ...

    config = tuner.WorkerConfig(
        device="cpu", heartbeat_interval=1.0, studies=("bk",), exit_when_idle=True
    )
    worker = tuner.Worker(db, config, observer=Clock())
    original = worker._run

    def timed(claim: storage.Claim) -> None:
        t0 = time.perf_counter()
        original(claim)
        durations.append(time.perf_counter() - t0)

    worker._run = timed  # type: ignore[method-assign]
    t0 = time.perf_counter()
    worker.run()
    wall = time.perf_counter() - t0
    db.dispose()
    return {"per_trial_ms_median": 1000 * statistics.median(durations),
            "per_trial_ms_mean": 1000 * wall / n_trials,
            "per_trial_ms_p95": 1000 * sorted(durations)[int(0.95 * len(durations))]}  # fmt: skip


def bench_optuna(url: str, n_trials: int) -> dict[str, float]:
    study = optuna.create_study(
        storage=optuna.storages.RDBStorage(url), direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.MedianPruner(),
    )  # fmt: skip
    durations: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("initializer", ["xavier_uniform", "kaiming_normal", "lsuv"])
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
        trial.suggest_categorical("batch_size", [32, 64, 128, 256])
        trial.suggest_int("patience", 2, 10)
        best = 0.0
        for epoch in range(1, REPORTS + 1):
            best = max(best, 1.0 - 1.0 / (epoch + 1))
            trial.report(best, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned
        return best

    def timed(trial: optuna.Trial) -> float:
        return objective(trial)

    t0 = time.perf_counter()
    last = [t0]

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        now = time.perf_counter()
        durations.append(now - last[0])
        last[0] = now

    study.optimize(timed, n_trials=n_trials, callbacks=[callback])
    wall = time.perf_counter() - t0
    return {"per_trial_ms_median": 1000 * statistics.median(durations),
            "per_trial_ms_mean": 1000 * wall / n_trials,
            "per_trial_ms_p95": 1000 * sorted(durations)[int(0.95 * len(durations))]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with scratch_database() as url:
        ours = bench_worker(url, args.trials)
    with scratch_database() as url:
        peer = bench_optuna(url, args.trials)
    print(json.dumps({
        "bench": "bookkeeping", "trials": args.trials, "params": 5, "reports": REPORTS,
        "worker": {k: round(v, 2) for k, v in ours.items()},
        "optuna_rdb": {k: round(v, 2) for k, v in peer.items()},
        "ratio_median": round(peer["per_trial_ms_median"] / ours["per_trial_ms_median"], 2),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

"""Per-trial bookkeeping of a worker on PostgreSQL, against plain Optuna's RDB storage.

Bookkeeping is everything a trial costs besides training: claiming it against the
budget, asking Optuna, sampling 5 parameters, 20 epoch reports with pruning checks,
telling the result, the run and results rows, the heartbeat. The objective is trivial
(no training): the worker's real code path runs with an ``Executor`` whose trial is a
function that reports 20 synthetic epochs. The peer is a plain Optuna study on the
same server, same 5 parameters and 20 reports + should_prune, one trial at a time.

A trial's time is the time between its end and the previous trial's end (the first is
counted from the start), on both sides: claim and ask included. Beside the times, the CPU
time of this process per trial, and the SQL statements and commits per trial (round trips
and WAL flushes; they do not depend on how busy the machine is).

    python bench/bookkeeping.py --trials 200

Prints the command line, then ONE JSON line. Needs PostgreSQL on 127.0.0.1:5432 (trust auth,
user postgres).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

import storage
from tests.harness import scratch_postgres
from tuner.spec import StudySpec, parse_spec
from tuner.studies import submit_study
from tuner.training import EpochStats, StopReason, TrialOutcome
from tuner.worker import Executor, RunObserver, Worker, WorkerConfig

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REPORTS = 20


class SqlCounter:
    """Statements and commits on every engine while counting (ours and Optuna's)."""

    def __init__(self) -> None:
        self.statements = self.commits = 0
        self.on = False
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._statement)
        sa.event.listen(sa.engine.Engine, "commit", self._commit)

    def _statement(self, *args: Any) -> None:
        self.statements += self.on

    def _commit(self, *args: Any) -> None:
        self.commits += self.on


def trivial_trial(**kw: Any) -> TrialOutcome:
    """Stands in for training: 20 epochs of made-up figures through the real hook."""
    on_epoch = kw["on_epoch"]
    started = datetime.now(UTC)
    best = 0.0
    reason: StopReason = "max_epochs"
    for epoch in range(1, REPORTS + 1):
        acc = 1.0 - 1.0 / (epoch + 1)
        best = max(best, acc)
        stop = on_epoch(EpochStats(epoch, 1.0 / epoch, 1.0 / epoch, acc))
        if stop is not None:
            reason = stop
            break
    return TrialOutcome(
        number=kw["number"],
        params=kw["params"],
        state="pruned" if reason == "pruned" else "complete",
        stop_reason=reason,
        value=best,
        best_epoch=epoch,
        epochs_run=epoch,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_s=0.0,
        device="cpu",
        seeds={"init": 0, "data": 0},
    )


def spec(name: str, n_trials: int) -> StudySpec:
    search = {  # the five dimensions
        "initializer": ["xavier_uniform", "kaiming_normal", "orthogonal", "lsuv"],
        "lr": {"low": 1e-4, "high": 1.0, "log": True},
        "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
        "batch_size": [32, 64, 128, 256],
        "patience": {"low": 2, "high": 10},
    }
    return parse_spec(
        {
            "name": name,
            "task": {"model": "mlp", "hidden": [8], "dataset": "synthetic"},
            "search": search,
            "budget": {"n_trials": n_trials, "max_epochs": REPORTS},
            "sampler": "random",  # bookkeeping, not sampling cost: both sides sample at random
            "pruner": "median",
        }
    )


def figures(ends: list[tuple[float, float]], start: float, counter: SqlCounter) -> dict[str, float]:
    """Per-trial times (between consecutive trial ends), CPU and SQL per trial.

    ``ends`` holds (wall, CPU) clock readings at each trial's end; CPU per trial is counted
    from the first trial's end, past the one-time start (imports, the task's data).
    """
    walls = [wall for wall, _ in ends]
    times = sorted(1000 * (b - a) for a, b in zip([start, *walls], walls, strict=False))
    n = len(times)
    cpu_s = (ends[-1][1] - ends[0][1]) / max(1, n - 1)
    return {
        "per_trial_ms_median": round(statistics.median(times), 2),
        "per_trial_ms_mean": round(statistics.fmean(times), 2),
        "per_trial_ms_p95": round(times[int(0.95 * n)], 2),
        "cpu_ms_per_trial": round(1000 * cpu_s, 2),  # this process's, all its threads
        "statements_per_trial": round(counter.statements / n, 2),
        "commits_per_trial": round(counter.commits / n, 2),
    }


def bench_worker(url: str, n_trials: int, counter: SqlCounter) -> dict[str, float]:
    db = storage.Database(url)
    db.upgrade()
    submit_study(db, spec("bk", n_trials))
    ends: list[tuple[float, float]] = []

    class Clock(RunObserver):
        def trial_finished(self, row: storage.TrialResultData) -> None:
            ends.append((time.perf_counter(), time.process_time()))

    config = WorkerConfig(  # one trial at a time (no population): the trivial objective
        device="cpu",
        heartbeat_interval=1.0,
        studies=("bk",),
        exit_when_idle=True,
        population=1,
    )
    worker = Worker(db, config, observer=Clock(), executor=Executor(trial=trivial_trial))
    counter.on, start = True, time.perf_counter()
    worker.run()
    counter.on = False
    db.dispose()
    return figures(ends, start, counter)


def bench_optuna(url: str, n_trials: int, counter: SqlCounter) -> dict[str, float]:
    study = optuna.create_study(
        storage=optuna.storages.RDBStorage(url),
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(),
    )
    ends: list[tuple[float, float]] = []

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

    def clock(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ends.append((time.perf_counter(), time.process_time()))

    counter.on, start = True, time.perf_counter()
    study.optimize(objective, n_trials=n_trials, callbacks=[clock])
    counter.on = False
    return figures(ends, start, counter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counter = SqlCounter()
    with scratch_postgres(ADMIN_DSN, prefix="tuner_bench_") as url:
        ours = bench_worker(url, args.trials, counter)
    counter.statements = counter.commits = 0
    with scratch_postgres(ADMIN_DSN, prefix="tuner_bench_") as url:
        peer = bench_optuna(url, args.trials, counter)
    result = {
        "bench": "bookkeeping",
        "trials": args.trials,
        "params": 5,
        "reports": REPORTS,
        "worker": ours,
        "optuna_rdb": peer,
        "ratio_median": round(peer["per_trial_ms_median"] / ours["per_trial_ms_median"], 2),
    }
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

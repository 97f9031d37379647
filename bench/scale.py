"""Many claimers on one PostgreSQL, and asking Optuna at 100 to 10,000 finished trials.

**Claimers.** For each size (1, 4, 16, 64 concurrent claimers by default), worker processes
x slots (``layout``: 1x1, 4x1, 4x4, 16x4) run one study on a fresh database: the worker's
real code path (claim, ask, 20 epoch reports, record, heartbeat) with a trial that trains
nothing (``bench/bookkeeping.py``'s), one trial per claim, the random sampler (claims and
records are measured, not sampling). The processes fork from this one once everything is
imported, build their worker, and start together. Figures: trials/s over all of them (from
the start to the last trial's end), each claim's time (its transaction, commit included),
whether the study ended exact (one results row per trial, none twice, every run done once,
the budget claimed exactly, every Optuna trial finished), and the most connections
``pg_stat_activity`` showed on the database, polled every 20 ms, beside the bound (processes
x (slots + 1)). ``--pgbouncer`` puts a PgBouncer in transaction mode (``--pgbouncer-pool``
server connections) between the workers and PostgreSQL.

**Asking.** For each history (100, 1,000, 10,000 finished trials by default), a study of the
five dimensions (TPE, the default) is filled with that many finished trials (written in
bulk through ``storage``), then one worker slot runs ``--asks`` trials of it: an ask is the
time from a claim's end to the trial asked (study context, sampler, snapshot refresh,
TPE's sampling, the trial created). The first ask reads the whole history into the
worker's cache (``first_ask_ms``); p50 and p95 are over the others. Then the same again with
``sampler.history: all`` (TPE reads every trial), for comparison.

    python bench/scale.py
    python bench/scale.py --claimers 1,4 --asks-at 100,1000 --asks 20

Prints the command line, a table per part, then ONE JSON line. Exit 1 when a study did not
end exact. Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import random
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

import optuna
import psycopg
import sqlalchemy as sa
from optuna.trial import TrialState

import storage
from bench.bookkeeping import spec as five_dimensions
from bench.bookkeeping import trivial_trial
from tests.harness import default_admin_dsn, pgbouncer, pgbouncer_url, scratch_postgres
from tuner.search import suggest
from tuner.spec import StudySpec, parse_spec
from tuner.studies import submit_study
from tuner.tasks import build_task
from tuner.worker import Executor, RunObserver, Worker, WorkerConfig, worker_database
from tuner.worker._asking import _InMemoryTrial
from tuner.worker._claims import Claims

STUDY = "scale"
POLL_S = 0.02


def layout(claimers: int) -> tuple[int, int]:
    """Processes x slots for ``claimers``: one slot each up to 8, four slots beyond."""
    slots = 1 if claimers <= 8 else 4
    if claimers % slots:
        raise ValueError(f"{claimers} claimers do not split into processes of {slots} slots")
    return claimers // slots, slots


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def timed_claims(into: list[float], ends: list[float] | None = None) -> None:
    """Record the time of every successful claim of this process (its transaction)."""
    original = Claims.claim

    def claim(self: Claims) -> storage.Claim | None:
        started = time.perf_counter()
        got = original(self)
        if got is not None:
            into.append(1000 * (time.perf_counter() - started))
            if ends is not None:
                ends.append(time.perf_counter())
        return got

    Claims.claim = claim  # type: ignore[method-assign]


def study_spec(n_trials: int, sampler: Any = "random") -> StudySpec:
    raw = five_dimensions(STUDY, n_trials).to_json()
    raw["sampler"] = sampler
    return parse_spec(raw)


# --------------------------------------------------------------------------- claimers


class Connections:
    """The most connections ``pg_stat_activity`` shows on a database, by application_name."""

    def __init__(self, database: str) -> None:
        self.database, self.peak = database, 0
        self.by_role: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Connections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        query = (
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1"
        )
        with psycopg.connect(default_admin_dsn(), autocommit=True) as admin:
            while not self._stop.wait(POLL_S):
                rows: dict[str, int] = dict(admin.execute(query, (self.database,)).fetchall())
                if sum(rows.values()) > self.peak:
                    self.peak, self.by_role = sum(rows.values()), rows


def claimer_process(url: str, slots: int, ready: Any, go: Any, results: Any) -> None:
    """One worker process of ``slots`` slots: built, then run when ``go`` is set."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    claims: list[float] = []
    timed_claims(claims)
    db = worker_database(url, slots)
    spec = study_spec(1)
    config = WorkerConfig(device="cpu", slots=slots, threads=1, heartbeat_interval=2.0,
                          poll_interval=0.05, studies=(STUDY,), exit_when_idle=True,
                          population=1)  # fmt: skip
    worker = Worker(db, config, tasks={STUDY: build_task(spec.task)},
                    executor=Executor(trial=trivial_trial))  # fmt: skip
    ready.put(True)
    go.wait()
    started = time.perf_counter()
    try:
        ran = worker.run()
    finally:
        db.dispose()
    results.put({"ran": ran, "claims": claims, "start": started, "end": time.perf_counter()})


def exactness(url: str, n_trials: int) -> dict[str, Any]:
    """Whether the study ended with exactly its budget: the figures that say so."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:

            def rows_of(sql: str) -> list[Any]:
                return list(connection.execute(sa.text(sql)).all())

            ((rows, distinct),) = rows_of(
                "SELECT count(*), count(DISTINCT trial_number) FROM tuner_trial_results"
            )
            by_state = "SELECT state, count(*) FROM tuner_trial_runs GROUP BY state"
            runs: dict[str, int] = {state: n for state, n in rows_of(by_state)}
            ((claimed,),) = rows_of("SELECT n_claimed FROM tuner_studies")
            ((finished,),) = rows_of(
                "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
            )
    finally:
        engine.dispose()
    exact = rows == distinct == claimed == finished == n_trials and runs == {"done": n_trials}
    return {"rows": rows, "distinct_rows": distinct, "runs": runs, "claimed": claimed,
            "optuna_finished": finished, "exact": exact}  # fmt: skip


def bench_claimers(claimers: int, args: argparse.Namespace) -> dict[str, Any]:
    processes, slots = layout(claimers)
    n_trials = max(args.min_trials, claimers * args.trials_per_claimer)
    with scratch_postgres(args.admin_dsn, prefix="tuner_bench_") as direct:
        db = storage.Database(direct)
        db.upgrade()
        submit_study(db, study_spec(n_trials))
        db.dispose()
        bouncer = (
            pgbouncer(args.admin_dsn, pool_size=args.pgbouncer_pool)
            if args.pgbouncer
            else contextlib.nullcontext(None)
        )
        with bouncer as port:
            url = direct if port is None else pgbouncer_url(direct, port)
            fork = multiprocessing.get_context("fork")
            ready, results, go = fork.Queue(), fork.Queue(), fork.Event()
            children = [
                fork.Process(target=claimer_process, args=(url, slots, ready, go, results))
                for _ in range(processes)
            ]
            for child in children:
                child.start()
            for _ in children:
                ready.get(timeout=600)
            with Connections(sa.make_url(direct).database or "") as connections:
                go.set()
                done = [results.get(timeout=1800) for _ in children]
                for child in children:
                    child.join()
        figures = exactness(direct, n_trials)
    claims = [ms for d in done for ms in d["claims"]]
    wall = max(d["end"] for d in done) - min(d["start"] for d in done)
    return {
        "claimers": claimers,
        "layout": f"{processes}x{slots}",
        "trials": n_trials,
        "ran": sum(d["ran"] for d in done),
        "wall_s": round(wall, 2),
        "trials_per_s": round(sum(d["ran"] for d in done) / wall, 1),
        "claim_ms_p50": percentile(claims, 0.5),
        "claim_ms_p95": percentile(claims, 0.95),
        "connections_peak": connections.peak,
        "connections_by_role": connections.by_role,
        "connections_bound": processes * (slots + 1),
        **figures,
    }


# --------------------------------------------------------------------------- asking


def fill(db: storage.Database, spec: StudySpec, n: int, seed: int = 0) -> None:
    """``n`` finished trials of the spec's search space, about a tenth pruned, each with 5
    intermediate values, written through storage in transactions of 1,000."""
    rng = random.Random(seed)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.load_study(study_name=STUDY, storage=db.optuna_storage())
    snapshot: Any = study  # the random sampler reads nothing of it
    study_id = study._study_id
    for start in range(0, n, 1000):
        with db.session() as session:
            for _ in range(min(1000, n - start)):
                trial = _InMemoryTrial(snapshot, sampler)
                suggest(trial, spec.search)  # type: ignore[arg-type]
                trial_id, _ = storage.create_optuna_trial(
                    session, study_id, trial.params, trial.distributions, {}
                )
                curve = {e: rng.random() for e in range(1, 6)}
                pruned = rng.random() < 0.1
                state = TrialState.PRUNED if pruned else TrialState.COMPLETE
                value = curve[5] if pruned else max(curve.values())
                storage.finish_optuna_trial(session, trial_id, state, value, curve)


def asks(db: storage.Database, n_asks: int) -> list[float]:
    """One slot runs ``n_asks`` trials; each ask's milliseconds, in order."""
    claim_ends: list[float] = []
    asked: list[float] = []

    class Clock(RunObserver):
        def trial_started(self, number: int, params: dict[str, Any]) -> None:
            asked.append(time.perf_counter())

    config = WorkerConfig(device="cpu", threads=1, heartbeat_interval=2.0, poll_interval=0.05,
                          studies=(STUDY,), exit_when_idle=True, population=1)  # fmt: skip
    original = Claims.claim
    timed_claims([], claim_ends)
    try:
        Worker(db, config, observer=Clock(), executor=Executor(trial=trivial_trial)).run()
    finally:
        Claims.claim = original  # type: ignore[method-assign]
    assert len(asked) == len(claim_ends) == n_asks, (len(asked), len(claim_ends))
    return [1000 * (a - c) for a, c in zip(asked, claim_ends, strict=True)]


def bench_asks(history: int, args: argparse.Namespace) -> dict[str, Any]:
    with scratch_postgres(args.admin_dsn, prefix="tuner_bench_") as url:
        db = worker_database(url, 1)
        db.upgrade()
        spec = study_spec(args.asks, sampler="tpe")
        submit_study(db, spec)
        started = time.perf_counter()
        fill(db, spec, history)
        filled_s = time.perf_counter() - started
        result: dict[str, Any] = {"finished_trials": history, "fill_s": round(filled_s, 1)}
        for label, window in (("window", spec.sampler.history), ("whole", "all")):
            if label == "whole":  # the same study, TPE now reading every trial
                raw = spec.to_json()
                raw["sampler"] = {"name": "tpe", "history": "all"}
                with db.session() as session:
                    storage.set_study_spec(session, STUDY, parse_spec(raw).to_json())
                    storage.set_study_budget(session, STUDY, 2 * args.asks)
            times = asks(db, args.asks)
            result[label] = {
                "history": window if isinstance(window, str) else window.model_dump(),
                "first_ask_ms": round(times[0], 1),
                "ask_ms_p50": percentile(times[1:], 0.5),
                "ask_ms_p95": percentile(times[1:], 0.95),
            }
        db.dispose()
    return result


# --------------------------------------------------------------------------- output


def print_tables(claims: list[dict[str, Any]], asking: list[dict[str, Any]]) -> None:
    if claims:
        print("| claimers | processes x slots | trials | wall s | trials/s | claim p50 ms |"
              " claim p95 ms | exact | connections peak (bound) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for c in claims:
            print(f"| {c['claimers']} | {c['layout']} | {c['trials']} | {c['wall_s']} |"
                  f" {c['trials_per_s']} | {c['claim_ms_p50']} | {c['claim_ms_p95']} |"
                  f" {'yes' if c['exact'] else 'NO'} |"
                  f" {c['connections_peak']} ({c['connections_bound']}) |")  # fmt: skip
    if asking:
        print("| finished trials | ask p50 ms | ask p95 ms | first ask ms |"
              " whole history: p50 ms | p95 ms | first ms |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for a in asking:
            w, h = a["window"], a["whole"]
            print(f"| {a['finished_trials']} | {w['ask_ms_p50']} | {w['ask_ms_p95']} |"
                  f" {w['first_ask_ms']} | {h['ask_ms_p50']} | {h['ask_ms_p95']} |"
                  f" {h['first_ask_ms']} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claimers", default="1,4,16,64", help="sizes, comma-separated")
    parser.add_argument("--trials-per-claimer", type=int, default=8)
    parser.add_argument("--min-trials", type=int, default=100)
    parser.add_argument("--asks-at", default="100,1000,10000", help="finished trials")
    parser.add_argument("--asks", type=int, default=50, help="asks timed per history")
    parser.add_argument("--pgbouncer", action="store_true", help="claimers through PgBouncer")
    parser.add_argument("--pgbouncer-pool", type=int, default=20)
    parser.add_argument("--admin-dsn", default=default_admin_dsn())
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    sizes = [int(s) for s in args.claimers.split(",") if s]
    histories = [int(s) for s in args.asks_at.split(",") if s]
    claims = [bench_claimers(size, args) for size in sizes]
    asking = [bench_asks(history, args) for history in histories]
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print_tables(claims, asking)
    exact = all(c["exact"] for c in claims)
    at_most = max(histories, default=0)
    goal = next(
        (a["window"]["ask_ms_p95"] for a in asking if a["finished_trials"] == at_most), None
    )
    print(json.dumps({"bench": "scale", "pgbouncer": args.pgbouncer, "claimers": claims,
                      "asks": asking, "exact_everywhere": exact,
                      f"ask_p95_ms_at_{at_most}": goal,
                      "wall_s": round(time.perf_counter() - started, 1)}))  # fmt: skip
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()

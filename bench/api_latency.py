"""Latency of the API's hot read path: one page of a big study's trials, over real HTTP.

Measures ``GET /v1/studies/{name}/trials?limit=100`` on a study with 10,000 finished trials in
PostgreSQL, under 32 concurrent keep-alive clients, through uvicorn running in a subprocess
on 127.0.0.1 (the production stack: uvicorn -> FastAPI -> SQLAlchemy -> psycopg -> PostgreSQL,
bearer-token auth on, as docker-compose.yml runs it). Pages are random (``offset`` anywhere in
the 10k), half ordered by ``trial_number`` and half by ``value`` (best first, the dashboard's
default). Every response must be 200 with 100 items and ``total`` 10,000: wrk checks the
status and total of each and the items of every 50th; 100 pages before and 100 after the load
are checked in full.

Steps: create a fresh database ``tuner_bench_<hex>`` on the server (``--admin-dsn``, default
``$TUNER_TEST_POSTGRES_DSN`` or ``postgresql://postgres@127.0.0.1:5432/postgres``), migrate it,
bulk-insert the trials, VACUUM ANALYZE, start uvicorn, wait for ``/healthz``, check a sample,
warm up, measure, check a sample; finally stop uvicorn and drop the database (unless
``--keep``). The load comes from ``wrk`` (``bench/wrk_load.py``) when it is installed, else (or
with ``--client httpx``) from 32 coroutines on one ``httpx.AsyncClient``.

Prints the command line, then ONE JSON line::

    {"bench": "api_latency", "client": "wrk", "trials": 10000, "clients": 32,
     "uvicorn_workers": 2, "requests": ..., "p50_ms": ..., "p95_ms": ..., "rps": ...,
     "client_cpu_pct": ..., "server_cpu_ms_per_request": ..., "postgres_cpu_ms_per_request": ...}

Run from the repository root, in the project's virtualenv::

    python bench/api_latency.py [--duration 20] [--clients 32] [--uvicorn-workers 2] [--keep]

The client runs on the same machine as the server, so both share its cores; compare figures
only between runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
import wrk_load  # bench/, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

import storage
from tests.harness import (
    ADMIN_DSN_ENV,
    DEFAULT_ADMIN_DSN,
    Server,
    free_port,
    scratch_postgres,
    server_env,
    serving,
    uvicorn_factory,
)

STUDY_NAME = "bench-mnist-init"
TRIALS = 10_000
PAGE_SIZE = 100
ORDERS: tuple[str, ...] = ("trial_number", "value")

#: Seven initializers, with the parameters a real search space gives them.
INITIALIZERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("xavier_uniform", {"gain": 1.4142135623730951}),
    ("xavier_normal", {"gain": 1.4142135623730951}),
    ("kaiming_uniform", {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"}),
    ("kaiming_normal", {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"}),
    ("orthogonal", {"gain": 1.0}),
    ("normal", {"mean": 0.0, "std": 0.01}),
    ("lecun_normal", {}),
)
BATCH_SIZES = (32, 64, 128, 256)
MAX_EPOCHS = 30


# --------------------------------------------------------------------------- data


def trial_rows(study_name: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` realistic ``tuner_trial_results`` rows: what a long MNIST-init search leaves."""
    rng = random.Random(seed)
    t0 = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)
    n_workers = 8
    clocks = [t0] * n_workers  # each of 8 GPU workers runs its trials back to back
    rows: list[dict[str, Any]] = []
    for number in range(n):
        name, base_params = INITIALIZERS[rng.randrange(len(INITIALIZERS))]
        init_params = dict(base_params)
        if name == "normal":
            init_params["std"] = 10 ** rng.uniform(-3, 0)
        lr = 10 ** rng.uniform(-4, 0)
        weight_decay = 0.0 if rng.random() < 0.2 else 10 ** rng.uniform(-6, -1)
        batch_size = rng.choice(BATCH_SIZES)
        patience = rng.randint(2, 10)
        # Accuracy peaks near lr=0.05 and suffers from a tiny normal init or heavy L2.
        quality = 0.975 - 0.04 * (math.log10(lr) + 1.3) ** 2 - 0.3 * weight_decay
        if name == "normal" and init_params["std"] < 0.01:
            quality -= 0.15
        roll = rng.random()
        value: float | None
        error: str | None = None
        if roll < 0.85:
            state = "complete"
            stop_reason = rng.choices(
                ("patience", "max_epochs", "diverged", "timeout"), (70, 22, 5, 3)
            )[0]
            epochs_run = MAX_EPOCHS if stop_reason == "max_epochs" else rng.randint(3, MAX_EPOCHS)
            value = min(0.995, max(0.098, quality + rng.gauss(0.0, 0.01)))
        elif roll < 0.95:
            state, stop_reason = "pruned", "pruned"
            epochs_run = rng.randint(1, 8)
            value = min(0.99, max(0.098, quality - 0.05 + rng.gauss(0.0, 0.02)))
        else:
            state = "fail"
            stop_reason = rng.choice(("error", "diverged"))
            epochs_run = rng.randint(0, 4)
            value = None
            if stop_reason == "error":
                error = "RuntimeError: CUDA out of memory. Tried to allocate 196.00 MiB"
        best_epoch = None if value is None else max(0, epochs_run - 1 - min(patience, epochs_run))
        duration_s = round(epochs_run * (0.35 + 48.0 / batch_size) * rng.uniform(0.9, 1.2), 3)
        worker = number % n_workers
        started_at = clocks[worker] + datetime.timedelta(seconds=rng.uniform(0.05, 0.5))
        finished_at = started_at + datetime.timedelta(seconds=duration_s)
        clocks[worker] = finished_at
        rows.append(
            {
                "study_name": study_name,
                "trial_number": number,
                "state": state,
                "stop_reason": stop_reason,
                "initializer": name,
                "lr": lr,
                "weight_decay": weight_decay,
                "batch_size": batch_size,
                "patience": patience,
                "value": value,
                "best_epoch": best_epoch,
                "epochs_run": epochs_run,
                "duration_s": duration_s,
                "worker": f"gpu-node-{worker // 4}:{4100 + worker}:{worker:06x}",
                "device": f"cuda:{worker % 4}",
                "started_at": started_at,
                "finished_at": finished_at,
                "params_json": {
                    "initializer": name,
                    "initializer_name": name,
                    "init_params": init_params,
                    "lr": lr,
                    "weight_decay": weight_decay,
                    "batch_size": batch_size,
                    "patience": patience,
                    "seeds": {"init": rng.getrandbits(31), "data": rng.getrandbits(31)},
                },
                "error": error,
            }
        )
    return rows


STUDY_SPEC: dict[str, Any] = {
    "name": STUDY_NAME,
    "task": {"model": "mlp", "hidden": [256, 256], "activation": "relu", "dataset": "mnist-5k"},
    "metric": "val_accuracy",
    "search": {
        "initializer": [name for name, _ in INITIALIZERS],
        "lr": {"low": 1e-4, "high": 1.0, "log": True},
        "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
        "batch_size": list(BATCH_SIZES),
        "patience": {"low": 2, "high": 10},
    },
    "budget": {"n_trials": 10_000, "max_epochs": MAX_EPOCHS},
    "sampler": "tpe",
    "pruner": "median",
    "seed": 0,
}


def load_study(url: str, n_trials: int) -> tuple[float, str]:
    """Migrate, create the study and bulk-insert its trials; (seconds taken, server version)."""
    started = time.perf_counter()
    db = storage.Database(url)
    try:
        db.upgrade()
        with db.session() as session:
            storage.create_study_record(
                session,
                name=STUDY_NAME,
                spec_json=STUDY_SPEC,
                metric="val_accuracy",
                direction="maximize",
                n_trials=n_trials,
            )
        rows = trial_rows(STUDY_NAME, n_trials)
        with db.session() as session:
            session.execute(sa.insert(storage.TrialResult), rows)
        with db.engine.connect() as connection:
            # What autovacuum does to a table soon after a bulk load: statistics, and the
            # visibility map that lets the offset walk read the index alone.
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(sa.text("VACUUM (ANALYZE) tuner_trial_results"))
            loaded = connection.scalar(
                sa.select(sa.func.count()).select_from(storage.TrialResult.__table__)
            )
            version = str(connection.scalar(sa.text("SHOW server_version")))
        if loaded != n_trials:
            raise SystemExit(f"loaded {loaded} trial rows, expected {n_trials}")
    finally:
        db.dispose()
    return time.perf_counter() - started, version


# --------------------------------------------------------------------------- server


@contextlib.contextmanager
def uvicorn_server(
    app: str, url: str, workers: int, token: str, timeout_s: float
) -> Iterator[Server]:
    """uvicorn serving ``app`` (a factory, configured by the ``TUNER_*`` environment it is
    given) on a free loopback port, ready (``/healthz``); stopped on exit."""
    port = free_port()
    variables = {"TUNER_DATABASE_URL": url, "TUNER_API_TOKENS": f"read:{token}"}
    env = server_env({**variables, "TUNER_DASHBOARD": "false"}, isolate=False)
    command = uvicorn_factory(app, port, workers=workers)
    with serving(command, port, env=env, ready_path="/healthz", timeout_s=timeout_s) as server:
        yield server


# --------------------------------------------------------------------------- load


@dataclasses.dataclass(frozen=True)
class Sample:
    order_by: str
    latency_s: float


@dataclasses.dataclass
class Load:
    samples: list[Sample]
    wall_s: float
    failures: list[str]
    client_cpu_s: float = 0.0  # CPU time the load generator itself used (it shares the cores)


def request_plan(n: int, n_trials: int, seed: int) -> list[dict[str, str | int]]:
    """``n`` query strings: a random full page, alternating the two orders."""
    rng = random.Random(seed)
    last_page_start = n_trials - PAGE_SIZE
    return [
        {"limit": PAGE_SIZE, "offset": rng.randint(0, last_page_start), "order_by": ORDERS[i % 2]}
        for i in range(n)
    ]


def check_page(response: httpx.Response, n_trials: int) -> str | None:
    """Why a response is not a full page of this study, or None when it is."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    body = response.json()
    items = body.get("items")
    if not isinstance(items, list) or len(items) != PAGE_SIZE:
        return f"expected {PAGE_SIZE} items, got {len(items) if isinstance(items, list) else items}"
    if body.get("total") != n_trials:
        return f"expected total {n_trials}, got {body.get('total')!r}"
    return None


async def run_load(
    client: httpx.AsyncClient,
    path: str,
    plan: list[dict[str, str | int]],
    clients: int,
    n_trials: int,
) -> Load:
    """Send ``plan`` with ``clients`` concurrent coroutines; every request timed on its own."""
    samples: list[Sample] = []
    failures: list[str] = []
    queue = iter(plan)  # shared: each request goes to whichever coroutine is free next

    async def one_client() -> None:
        for params in queue:
            started = time.perf_counter()
            response = await client.get(path, params=params)  # the body is read, too
            latency = time.perf_counter() - started
            samples.append(Sample(str(params["order_by"]), latency))
            problem = check_page(response, n_trials)
            if problem is not None:
                failures.append(f"{params}: {problem}")

    wall_start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return Load(samples, wall_s, failures, cpu_s)


async def measure(
    base_url: str, path: str, token: str, args: argparse.Namespace, n_trials: int
) -> tuple[Load, Load]:
    """Warm up, then measure, on one client whose keep-alive pool holds every connection."""
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, headers=headers, timeout=60.0
    ) as client:
        warmup_plan = request_plan(args.warmup, n_trials, args.seed + 1)
        warmup = await run_load(client, path, warmup_plan, args.clients, n_trials)
        plan = request_plan(args.requests, n_trials, args.seed)
        load = await run_load(client, path, plan, args.clients, n_trials)
    return warmup, load


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between the closest ranks."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_stats(samples: list[Sample]) -> dict[str, float]:
    values = sorted(s.latency_s * 1000.0 for s in samples)
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(values[-1], 2),
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator: wrk (C; auto when installed) or the Python httpx client",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="wrk: measured seconds")
    parser.add_argument("--warmup-s", type=float, default=5.0, help="wrk: warm-up seconds")
    parser.add_argument("--check", type=int, default=100, help="pages fully checked, each side")
    parser.add_argument("--requests", type=int, default=3000, help="httpx: measured requests")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--uvicorn-workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--warmup", type=int, default=200, help="httpx: warm-up requests")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--writes-per-s",
        type=float,
        default=0.0,
        help="wrk: rewrite a trial row this often while measuring (workers recording results)",
    )
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(ADMIN_DSN_ENV, DEFAULT_ADMIN_DSN),
        help=f"libpq DSN of a database to create the scratch one from (${ADMIN_DSN_ENV})",
    )
    parser.add_argument(
        "--app", default="api:create_app", help="the ASGI app factory uvicorn serves"
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("requests", "clients", "uvicorn_workers", "duration"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.client == "auto":
        args.client = "wrk" if wrk_load.wrk_path() else "httpx"
    elif args.client == "wrk" and wrk_load.wrk_path() is None:
        parser.error("--client wrk: wrk is not installed (apt-get install -y wrk)")
    return args


def check_sample(base_url: str, path: str, token: str, n: int, seed: int) -> list[str]:
    """Fetch ``n`` random pages one by one and check each in full; the problems found."""
    headers = {"Authorization": f"Bearer {token}"}
    problems = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for params in request_plan(n, TRIALS, seed):
            problem = check_page(client.get(path, params=params), TRIALS)
            if problem is not None:
                problems.append(f"{params}: {problem}")
    return problems


def backend_pids(url: str) -> list[int]:
    """The server processes of the client connections to ``url``'s database."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def per_request_ms(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or requests == 0:
        return None
    return round(1000.0 * (after - before) / requests, 3)


@contextlib.contextmanager
def results_writer(url: str, per_s: float) -> Iterator[dict[str, int]]:
    """Rewrite a random trial's row ``per_s`` times a second, as workers recording results do:
    the study row's lock, then the row (so every write gives the study a new version)."""
    written = {"writes": 0}
    if per_s <= 0:
        yield written
        return
    stop, db = threading.Event(), storage.Database(url)
    model, rng = storage.TrialResult, random.Random(7)

    def write() -> None:
        while not stop.wait(1.0 / per_s):
            with db.session() as session:
                storage.lock_study(session, STUDY_NAME)
                number = rng.randrange(TRIALS)
                session.execute(
                    sa.update(model)
                    .where(model.study_name == STUDY_NAME, model.trial_number == number)
                    .values(duration_s=model.duration_s + 0.001)
                )
            written["writes"] += 1

    thread = threading.Thread(target=write, name="results-writer", daemon=True)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join()
        db.dispose()


def measure_wrk(server: Server, url: str, path: str, token: str, args: argparse.Namespace) -> Any:
    """Warm up, then measure with wrk; figures, CPU per request, and the problems seen."""
    common: dict[str, Any] = {
        "clients": args.clients,
        "total": TRIALS,
        "page_size": PAGE_SIZE,
        "last_start": TRIALS - PAGE_SIZE,
    }
    warmup = wrk_load.run_wrk(
        server.base_url, path, token, duration_s=args.warmup_s, seed=args.seed + 1, **common
    )
    servers, backends = wrk_load.children(server.process.pid), backend_pids(url)
    server_cpu, pg_cpu = wrk_load.cpu_seconds(servers), wrk_load.cpu_seconds(backends)
    with results_writer(url, args.writes_per_s) as written:
        run = wrk_load.run_wrk(
            server.base_url, path, token, duration_s=args.duration, seed=args.seed, **common
        )
    n, wall_s = int(run["requests"]), run["duration_us"] / 1e6
    problems = [
        f"{r['bad']} bad responses, {r['socket_errors']} socket errors; {r['first_bad']}"
        for r in (warmup, run)
        if r["bad"] or r["socket_errors"]
    ]
    figures = {
        "requests": n,
        "duration_s": round(wall_s, 2),
        **{f"{q}_ms": round(run[f"{q}_us"] / 1000.0, 2) for q in ("p50", "p95", "p99", "max")},
        "rps": round(n / wall_s, 1),
        "client_cpu_pct": round(100.0 * run["client_cpu_s"] / wall_s, 1),
        "server_cpu_ms_per_request": per_request_ms(server_cpu, wrk_load.cpu_seconds(servers), n),
        "postgres_cpu_ms_per_request": per_request_ms(pg_cpu, wrk_load.cpu_seconds(backends), n),
        "warmup_s": args.warmup_s,
        "results_writes": written["writes"],
    }
    return figures, problems


def measure_httpx(base_url: str, path: str, token: str, args: argparse.Namespace) -> Any:
    """Warm up, then measure with the Python client; figures and the problems seen."""
    warmup, load = asyncio.run(measure(base_url, path, token, args, TRIALS))
    figures = {
        "requests": args.requests,
        **latency_stats(load.samples),
        "rps": round(len(load.samples) / load.wall_s, 1),
        "by_order": {
            order: latency_stats([s for s in load.samples if s.order_by == order])
            for order in ORDERS
        },
        "client_cpu_pct": round(100.0 * load.client_cpu_s / load.wall_s, 1),
        "warmup": args.warmup,
    }
    return figures, warmup.failures + load.failures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    try:
        with psycopg.connect(args.admin_dsn, autocommit=True, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable at {args.admin_dsn}: {exc}", file=sys.stderr)
        return 2

    token = secrets.token_urlsafe(24)
    path = f"/v1/studies/{STUDY_NAME}/trials"
    with scratch_postgres(args.admin_dsn, prefix="tuner_bench_", keep=args.keep) as url:
        load_s, server_version = load_study(url, TRIALS)
        print(f"loaded {TRIALS} trials in {load_s:.1f} s", file=sys.stderr)
        workers, timeout_s = args.uvicorn_workers, args.startup_timeout
        with uvicorn_server(args.app, url, workers, token, timeout_s) as server:
            probe = httpx.get(
                f"{server.base_url}{path}",
                params={"limit": PAGE_SIZE},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30.0,
            )
            problem = check_page(probe, TRIALS)
            if problem is not None:
                print(f"GET {path} is not serving a full page: {problem}", file=sys.stderr)
                return 3
            failures = check_sample(server.base_url, path, token, args.check, args.seed + 2)
            if args.client == "wrk":
                figures, seen = measure_wrk(server, url, path, token, args)
            else:
                figures, seen = measure_httpx(server.base_url, path, token, args)
            failures += seen
            failures += check_sample(server.base_url, path, token, args.check, args.seed + 3)
    if failures:
        print(f"{len(failures)} problems with the responses:", file=sys.stderr)
        print("\n".join(failures[:10]), file=sys.stderr)
        return 1
    result: dict[str, Any] = {
        "bench": "api_latency",
        "client": args.client,
        "trials": TRIALS,
        "clients": args.clients,
        "uvicorn_workers": args.uvicorn_workers,
        **figures,
        "checked": 2 * args.check,
        "limit": PAGE_SIZE,
        "auth": "bearer",
        "postgres": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_s": round(load_s, 2),
    }
    print(f"$ {command}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A real `tuner serve` (API + one embedded worker, SQLite) on a free port, for client tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ADMIN, READ = "admin-secret", "read-secret"
TOKENS = f"admin:{ADMIN},read:{READ}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cwd: Path, port: int, tokens: str = TOKENS) -> subprocess.Popen[bytes]:
    """Start `tuner serve` on ``port`` (its SQLite file in ``cwd``); see :func:`await_ready`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
    env.update(OMP_NUM_THREADS="1", TUNER_API_TOKENS=tokens)
    script = Path(sys.executable).with_name("tuner")
    command = [str(script), "serve", "--port", str(port), "--no-dashboard"]
    return subprocess.Popen(command, cwd=cwd, env=env)


def await_ready(proc: subprocess.Popen[bytes], base: str, timeout: float = 60.0) -> None:
    """Block until the server answers /readyz (bounded; it polls another process)."""
    end = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"tuner serve exited with {proc.returncode}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        assert time.monotonic() < end, "tuner serve never became ready"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@contextlib.contextmanager
def serving(cwd: Path, tokens: str = TOKENS) -> Iterator[str]:
    """A ready `tuner serve`; yields its base URL and stops it afterwards."""
    port = free_port()
    proc = start(cwd, port, tokens)
    base = f"http://127.0.0.1:{port}"
    try:
        await_ready(proc, base)
        yield base
    finally:
        stop(proc)


def tiny_spec(name: str, **overrides: object) -> dict[str, object]:
    """A study that trains in about a second: an MLP on digits, 2 epochs."""
    spec: dict[str, object] = {
        "name": name,
        "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
        "search": {
            "initializer": ["xavier_uniform", "kaiming_normal"],
            "lr": {"low": 0.01, "high": 0.1, "log": True},
            "batch_size": 64,
        },
        "budget": {"n_trials": 2, "max_epochs": 2},
        "pruner": "none",
    }
    spec.update(overrides)
    return spec


def endless_spec(name: str) -> dict[str, object]:
    """A study that cannot finish during a test (cancel it when done with it)."""
    spec = tiny_spec(name, budget={"n_trials": 50, "max_epochs": 400})
    spec["search"] = {
        "initializer": "xavier_uniform",
        "lr": 0.05,
        "batch_size": 64,
        "patience": 400,
    }
    return spec

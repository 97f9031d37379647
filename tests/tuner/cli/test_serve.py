"""`tuner serve`: API, embedded worker and dashboard on one command, on SQLite by default."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tuner.cli import app


def test_a_public_bind_without_tokens_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNER_API_TOKENS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "TUNER_API_TOKENS" in result.output


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_submitted_studies_and_the_dashboard(tmp_path: Path) -> None:
    port, base = _port(), ""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("tuner")), "serve", "--port", str(port)],
        cwd=tmp_path, env={**env, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:  # await readiness (bounded)
            assert proc.poll() is None, "tuner serve exited"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end, "tuner serve never became ready"
            time.sleep(0.05)
        spec = {"name": "served", "task": {"hidden": [8], "dataset": "digits"},
                "search": {"initializer": ["xavier_normal", "he_normal"]},
                "budget": {"n_trials": 2, "max_epochs": 1}}  # fmt: skip
        assert httpx.post(f"{base}/v1/studies", json=spec, timeout=60).status_code == 201
        end = time.monotonic() + 120
        while httpx.get(f"{base}/v1/studies/served").json()["status"] != "completed":
            assert time.monotonic() < end, "the embedded worker never finished the study"
            time.sleep(0.1)
        assert httpx.get(f"{base}/v1/studies/served/trials").json()["total"] == 2
        assert httpx.get(f"{base}/dashboard").status_code == 200
        names = [
            s["study_name"] for s in httpx.get(f"{base}/api/studies").json()["study_summaries"]
        ]
        assert names == ["served"]  # the dashboard reads the same database
        assert (tmp_path / "tuner.db").exists()  # SQLite by default
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0

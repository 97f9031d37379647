"""`tuner serve`: API, embedded worker and dashboard on one command, on SQLite by default."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.harness import free_port, serving, tuner_serve
from tuner.cli import app


def test_a_public_bind_without_tokens_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNER_API_TOKENS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "TUNER_API_TOKENS" in result.output


def test_serve_runs_submitted_studies_and_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    with serving(tuner_serve(port), port, cwd=tmp_path) as server:
        base = server.base_url
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
        assert server.stop() == 0  # SIGTERM: a clean shutdown

"""`tuner serve`: API, embedded worker and dashboard on one command, on SQLite by default."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import Settings, create_app
from tests.harness import free_port, scratch_sqlite, serving, tuner_serve
from tests.tuner.specs import ADMIN, READ, TOKENS
from tuner.cli import app


def test_a_public_bind_without_tokens_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNER_API_TOKENS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "TUNER_API_TOKENS" in result.output


@pytest.mark.parametrize(
    ("tokens", "said"),
    [
        ("root:x", "'root'"),
        ("admin:", "must look like 'admin:TOKEN'"),
        (",", "holds no 'kind:token' pair"),  # never read as "authentication off"
        (" , ,", "holds no 'kind:token' pair"),
    ],
)
def test_malformed_tokens_are_refused_in_one_line_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tokens: str, said: str
) -> None:
    monkeypatch.setenv("TUNER_API_TOKENS", tokens)
    url = scratch_sqlite(tmp_path)
    args = ["serve", "--host", "0.0.0.0", "--workers", "0", "--database-url", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "TUNER_API_TOKENS" in lines[0] and said in lines[0]
    assert not (tmp_path / "tuner.db").exists()


def _no_env_tuner(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("TUNER_")]:
        monkeypatch.delenv(key)


def test_serve_builds_the_app_from_a_settings_object(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`tuner serve` hands uvicorn an app built from its own settings and leaves the
    environment as it found it: the flags win, the other TUNER_* are read, none written."""
    _no_env_tuner(monkeypatch)
    monkeypatch.setenv("TUNER_API_TOKENS", TOKENS)
    monkeypatch.setenv("TUNER_DATA_DIR", str(tmp_path))
    served: list[uvicorn.Config] = []

    class Server:  # uvicorn.Server, minus the serving
        def __init__(self, config: uvicorn.Config) -> None:
            served.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # keep pytest's own handlers
    url = scratch_sqlite(tmp_path, "served.db")
    before = dict(os.environ)
    argv = ["serve", "--host", "0.0.0.0", "--port", "8123", "--workers", "0", "--no-dashboard"]
    result = CliRunner().invoke(app, [*argv, "--database-url", url])
    assert result.exit_code == 0, result.output
    assert dict(os.environ) == before
    (config,) = served
    assert (config.host, config.port) == ("0.0.0.0", 8123)
    settings: Settings = config.app.state.settings
    assert (settings.database_url, settings.dashboard) == (url, False)
    assert settings.tokens == (("admin", ADMIN), ("read", READ))
    assert settings.data_dir == tmp_path
    with TestClient(config.app) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/workers").status_code == 401
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert client.get("/v1/workers", headers=admin).status_code == 200
        assert client.get("/dashboard").status_code == 404
    assert dict(os.environ) == before


def test_the_factory_honors_explicit_settings_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_env_tuner(monkeypatch)
    monkeypatch.setenv("TUNER_DATABASE_URL", scratch_sqlite(tmp_path, "env.db"))
    monkeypatch.setenv("TUNER_API_TOKENS", "admin:from-the-environment")
    before = dict(os.environ)
    settings = Settings(database_url=scratch_sqlite(tmp_path, "given.db"), api_tokens=TOKENS)
    read = {"Authorization": f"Bearer {READ}"}
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/studies", headers=read).status_code == 200
        other = {"Authorization": "Bearer from-the-environment"}
        assert client.get("/v1/studies", headers=other).status_code == 401
    assert (tmp_path / "given.db").exists() and not (tmp_path / "env.db").exists()
    assert dict(os.environ) == before


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

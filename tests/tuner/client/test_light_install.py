"""The client as a CI runner installs it: the base package alone (no torch) in a fresh venv,
submitting to and reading from a real served app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import free_port, server_env, serving, tuner_serve
from tests.tuner.specs import ADMIN, TOKENS, tiny_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with ``pip install <repo>``: the base install, without any extra."""
    base = tmp_path_factory.mktemp("light")
    source = base / "src"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests", "bench"),
    )
    home = base / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        check=True,
        env=env,
    )
    yield home


def _run(venv_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("TUNER")}
    return subprocess.run(
        [str(venv_home / "bin" / "tuner"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv_home,
        timeout=300,
    )


def test_the_base_install_has_no_engine(light_venv: Path) -> None:
    python = str(light_venv / "bin" / "python")
    for module in ("torch", "sqlalchemy", "alembic", "optuna", "numpy"):
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} is installed in the light venv"
    version = _run(light_venv, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("tuner ")


def test_the_light_client_submits_waits_and_reads_results(light_venv: Path, tmp_path: Path) -> None:
    spec = tmp_path / "light.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("light-client")), encoding="utf-8")
    port, env = free_port(), server_env({"TUNER_API_TOKENS": TOKENS})
    command = tuner_serve(port, "--no-dashboard")  # the engine's own venv serves
    with serving(command, port, env=env, cwd=tmp_path) as server:
        auth = ("--url", server.base_url, "--token", ADMIN)
        submitted = _run(light_venv, "submit", str(spec), *auth, "--wait", "--poll-interval", "0.2")
        assert submitted.returncode == 0, submitted.stderr
        assert "study light-client completed" in submitted.stdout
        results = _run(light_venv, "results", "light-client", *auth)
        assert results.returncode == 0, results.stderr
        assert "xavier_uniform" in results.stdout or "kaiming_normal" in results.stdout
        status = _run(light_venv, "status", "light-client", *auth, "--json")
        assert status.returncode == 0, status.stderr
        study = json.loads(status.stdout)
        assert study["status"] == "completed" and study["counts"]["complete"] == 2

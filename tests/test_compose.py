"""The deployment files: docker-compose.yml and the Dockerfile, checked without a docker engine.

The compose file is parsed with PyYAML (anchors and ``<<`` merge keys resolved); when a
``docker-compose`` binary is on PATH it also has to accept the file (``config``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.harness import dockerfile_instructions

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "migrate", "api", "worker", "dashboard"}
#: Services that run the project's image and talk to the database.
TUNER_SERVICES = ("migrate", "api", "worker", "dashboard")
TORCH_PIN = "torch==2.13.0"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services mapping"
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """``{dependency: condition}``; the short list form means ``service_started``."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    assert test, "no healthcheck test"
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes (short ``[ip:]host:container[/proto]`` or long form)."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _postgres_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return _environment(services["postgres"])


def test_the_five_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_postgres_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:15")
    env = _postgres_env(services)
    assert env["POSTGRES_USER"] == env["POSTGRES_DB"] == "tuner"
    assert env.get("POSTGRES_PASSWORD")
    named = set(compose.get("volumes") or {})
    mounts = [str(volume).split(":") for volume in postgres.get("volumes") or []]
    assert any(
        source in named and target == "/var/lib/postgresql/data" for source, target, *_ in mounts
    ), f"no named volume on /var/lib/postgresql/data in {mounts} (named: {named})"


def test_postgres_healthcheck_asks_pg_isready(services: dict[str, dict[str, Any]]) -> None:
    text = _healthcheck_text(services["postgres"])
    assert "pg_isready" in text
    assert re.search(r"-U\s+tuner\b", text) and re.search(r"-d\s+tuner\b", text), text


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert _command(migrate) == ["migrate"]
    assert str(migrate.get("restart")) == "no"
    assert _depends_on(migrate) == {"postgres": "service_healthy"}


@pytest.mark.parametrize("name", ["api", "worker", "dashboard"])
def test_services_wait_for_the_migration_to_succeed(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert _depends_on(services[name]).get("migrate") == "service_completed_successfully"


def test_worker_waits_for_a_healthy_api(services: dict[str, dict[str, Any]]) -> None:
    assert _depends_on(services["worker"]).get("api") == "service_healthy"


@pytest.mark.parametrize("name", TUNER_SERVICES)
def test_database_url_points_at_the_postgres_service(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    url = _environment(services[name]).get("TUNER_DATABASE_URL", "")
    parts = urlsplit(url)
    pg = _postgres_env(services)
    assert parts.scheme == "postgresql+psycopg", url
    assert parts.hostname == "postgres" and parts.hostname in services, url
    assert parts.port in (None, 5432), url
    assert parts.path.lstrip("/") == pg["POSTGRES_DB"], url
    assert parts.username == pg["POSTGRES_USER"], url
    assert parts.password == pg["POSTGRES_PASSWORD"], url


def test_every_service_uses_the_same_database(services: dict[str, dict[str, Any]]) -> None:
    urls = {_environment(services[name]).get("TUNER_DATABASE_URL") for name in TUNER_SERVICES}
    assert len(urls) == 1, urls


def test_dashboard_reads_the_same_storage(services: dict[str, dict[str, Any]]) -> None:
    dashboard = services["dashboard"]
    entrypoint = dashboard.get("entrypoint")
    assert (shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint) == [
        "optuna-dashboard"
    ]
    command = _command(dashboard)
    assert command[0] == _environment(dashboard)["TUNER_DATABASE_URL"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8080"


def test_api_tokens_are_mandatory(services: dict[str, dict[str, Any]]) -> None:
    tokens = _environment(services["api"]).get("TUNER_API_TOKENS", "")
    # `${VAR:?message}`: compose refuses to start when the variable is unset or empty.
    assert re.fullmatch(r"\$\{TUNER_API_TOKENS:\?[^}]+\}", tokens), tokens


def test_api_binds_all_interfaces_without_embedded_workers(
    services: dict[str, dict[str, Any]],
) -> None:
    command = _command(services["api"])
    assert command[0] == "serve"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8000"
    assert command[command.index("--workers") + 1] == "0"
    assert "--no-dashboard" in command


def test_api_healthcheck_hits_readyz(services: dict[str, dict[str, Any]]) -> None:
    text = _healthcheck_text(services["api"])
    assert "urllib" in text
    assert "http://127.0.0.1:8000/readyz" in text


def test_worker_reserves_an_nvidia_gpu(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert _command(worker)[:3] == ["worker", "--device", "cuda:0"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", [])
        for device in devices
    ), devices
    env = _environment(worker)
    assert "TUNER_HEARTBEAT_INTERVAL" in env and "TUNER_GRACE" in env


def test_ports_8000_and_8080_are_published(services: dict[str, dict[str, Any]]) -> None:
    assert 8000 in _container_ports(services["api"])
    assert 8080 in _container_ports(services["dashboard"])


def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("the docker-compose binary is not on PATH; the YAML checks above still ran")
    return binary


def _run_config(
    binary: str, env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    # An empty env file: a developer's .env beside the compose file must not change the verdict.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    binary = _docker_compose()
    env = {**os.environ, "TUNER_API_TOKENS": "admin:test-token,read:test-read-token"}
    result = _run_config(binary, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "admin:test-token" in result.stdout


def test_docker_compose_refuses_to_run_without_tokens(tmp_path: Path) -> None:
    binary = _docker_compose()
    env = {key: value for key, value in os.environ.items() if key != "TUNER_API_TOKENS"}
    result = _run_config(binary, env, tmp_path)
    assert result.returncode != 0
    assert "TUNER_API_TOKENS" in result.stderr + result.stdout



def test_dockerfile_pins_torch_before_installing_the_project() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    runs = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "RUN"]
    torch_runs = [i for i, args in runs if "pip install" in args and TORCH_PIN in args]
    assert torch_runs, f"no RUN pip install {TORCH_PIN}"
    # No other torch requirement (an unpinned or different torch) is installed anywhere.
    for _, args in runs:
        for spec in re.findall(r"(?<![\w.-])torch(?:[=<>!~]=?[^\s\"']*)?(?=[\s\"']|$)", args):
            assert spec in ("torch", TORCH_PIN) or spec.startswith(TORCH_PIN), spec
    # The whole build context is copied, then installed, only after torch is in place.
    copy_all = [
        i for i, (kw, args) in enumerate(instructions) if kw == "COPY" and args.split()[0] == "."
    ]
    assert copy_all, "the project is never copied into the image (COPY . ...)"
    destination = instructions[copy_all[0]][1].split()[-1]
    project_runs = [
        i
        for i, args in runs
        if i > copy_all[0]
        and re.search(
            rf"pip install (?:\S+ )*'?(?:\.|{re.escape(destination)})(?:\[[\w,]+\])?'?(?:\s|$)",
            args,
        )
    ]
    assert project_runs, "the copied project is never pip-installed"
    assert torch_runs[0] < copy_all[0] < project_runs[0]


def test_dockerfile_takes_torch_from_a_configurable_index() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    args = [a for kw, a in instructions if kw == "ARG"]
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in args
    torch_run = next(a for kw, a in instructions if kw == "RUN" and TORCH_PIN in a)
    assert re.search(r"--index-url\s+\"?\$\{?TORCH_INDEX_URL\}?", torch_run), torch_run


def test_dockerfile_runs_tuner_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    entrypoints = [json.loads(a) for kw, a in instructions if kw == "ENTRYPOINT"]
    assert entrypoints[-1:] == [["tuner"]]
    commands = [json.loads(a) for kw, a in instructions if kw == "CMD"]
    assert commands[-1:] == [["serve", "--host", "0.0.0.0"]]
    users = [a for kw, a in instructions if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= patterns
    assert "*.db" in patterns
    # pip install . needs these: never ignore them.
    assert not {"pyproject.toml", "README.md", "tuner", "api", "storage"} & patterns

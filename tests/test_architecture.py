"""What the import contracts cannot see: which modules a fresh interpreter actually loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tuner

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ("torch", "numpy", "optuna", "sqlalchemy", "alembic", "storage", "api", "ray")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", ["tuner.client", "tuner.spec", "tuner.variance", "tuner"])
def test_the_client_and_the_spec_load_no_engine(module: str) -> None:
    loaded = set(_loaded_after(f"import {module}"))
    assert module in loaded
    assert not loaded & set(ENGINE), f"import {module} loaded {sorted(loaded & set(ENGINE))}"


def test_the_command_line_loads_the_engine_only_inside_a_command() -> None:
    loaded = set(_loaded_after("import tuner.cli"))
    assert "tuner.cli._remote" in loaded  # the commands are registered
    assert not loaded & {"torch", "sqlalchemy", "alembic", "optuna", "storage", "api", "ray"}
    assert "tuner.scale" not in loaded  # `tuner worker --ray` imports it (and Ray) when run


def test_a_spec_parses_without_loading_torch() -> None:
    statement = (
        "from tuner.spec import load_spec; "
        f"load_spec({str(ROOT / 'examples' / 'quickstart.yaml')!r})"
    )
    loaded = set(_loaded_after(statement))
    assert "torch" not in loaded
    assert "optuna" in loaded  # sampler and pruner options are checked against Optuna's classes


def test_version_is_printed_without_the_engine() -> None:
    statement = (
        "import sys; sys.argv = ['tuner', '--version']; from tuner.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    out = subprocess.run(
        [sys.executable, "-c", statement], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"tuner {tuner.__version__}"

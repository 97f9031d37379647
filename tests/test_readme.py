"""The README's two commands: CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)\n(.*?)```", text, re.S)
    assert first_block, "README must open with a shell block"
    return [line for line in first_block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_exactly_two_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert "tuner run examples/quickstart.yaml" in commands[0]
    assert "pytest" in commands[1]
    for command in commands:
        assert "pip install torch==2.13.0" in command  # before the project: no CUDA download


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_the_readmes_invalid_definition_example_prints_what_it_shows(tmp_path: Path) -> None:
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    example = re.search(
        r"```yaml\n# bad\.yaml\n(.*?)```\n\n```\n\$ tuner run bad\.yaml\n(.*?)```", text, re.S
    )
    assert example, "the README shows bad.yaml and what tuner run prints for it"
    (tmp_path / "bad.yaml").write_text(example.group(1))
    script = Path(sys.executable).with_name("tuner")
    run = subprocess.run([script, "run", "bad.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr == example.group(2)
    assert not (tmp_path / "tuner.db").exists()  # nothing written

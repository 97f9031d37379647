"""The scheduled sweep workflow: valid YAML, the expected triggers and steps, and its
`tuner sweep` command run exactly as written (twice: the first run, then the next one with
the first one's report as baseline)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import typer
import yaml

from tuner.cli import app

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "scheduled-sweep.yml"


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _steps() -> list[dict[str, Any]]:
    (job,) = _workflow()["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _index(predicate: Any) -> int:
    (found,) = [i for i, step in enumerate(_steps()) if predicate(step)]
    return found


def _sweep_command() -> list[str]:
    step = _steps()[_index(lambda s: "tuner sweep" in s.get("run", ""))]
    script = step["run"].replace("\\\n", " ")
    (line,) = [line for line in script.splitlines() if line.strip().startswith("tuner sweep")]
    return shlex.split(line)


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_triggers_are_a_schedule_and_a_manual_run() -> None:
    data = _workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5
    assert data["permissions"]["actions"] == "read"  # needed to fetch another run's artifact


def test_steps_install_cpu_torch_compare_with_the_last_run_and_keep_the_results() -> None:
    steps = _steps()
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert uses[:2] == ["actions/checkout", "actions/setup-python"]
    install = steps[
        _index(lambda s: "pip install -c constraints.txt -e '.[engine]'" in s.get("run", ""))
    ]["run"]
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in install
    assert install.index("torch==2.13.0") < install.index(
        "pip install -c constraints.txt -e '.[engine]'"
    )

    download = _index(lambda s: "download-artifact" in s.get("uses", ""))
    run = _index(lambda s: "tuner sweep" in s.get("run", ""))
    upload = _index(lambda s: "upload-artifact" in s.get("uses", ""))
    assert download < run < upload
    fetched, kept = steps[download], steps[upload]
    assert fetched["continue-on-error"] is True  # the first run has no baseline
    assert fetched["with"]["name"] == kept["with"]["name"]  # the artifact this run uploads
    assert fetched["with"]["workflow_conclusion"] == "success"  # the last *good* sweep
    assert kept["if"] == "always()"  # a failed gate still leaves its reports

    command = _sweep_command()
    kept_dir = PurePosixPath(kept["with"]["path"])
    database = _option(command, "--database-url").removeprefix("sqlite:///")
    for path in (database, *(_option(command, f) for f in ("--json", "--markdown", "--junit"))):
        assert PurePosixPath(path).parent == kept_dir  # uploaded: the SQLite file and reports
    # The next run finds this run's JSON report where --baseline looks for it.
    baseline = PurePosixPath(_option(command, "--baseline"))
    assert baseline.parent == PurePosixPath(fetched["with"]["path"])
    assert baseline.name == PurePosixPath(_option(command, "--json")).name
    assert "--allow-missing-baseline" in command and "--timeout" in command
    assert "--url" not in command  # embedded: no service in CI


def test_the_workflows_sweep_command_runs_as_written(tmp_path: Path) -> None:
    command = _sweep_command()
    assert command[:2] == ["tuner", "sweep"]
    spec = Path(command[2])
    (tmp_path / spec).parent.mkdir(parents=True)
    shutil.copy(ROOT / spec, tmp_path / spec)  # the checkout, as the runner sees it
    summary = tmp_path / "step-summary.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
    env.update(GITHUB_STEP_SUMMARY=str(summary), OMP_NUM_THREADS="1", COLUMNS="160")
    script = str(Path(sys.executable).with_name("tuner"))

    def run() -> dict[str, Any]:
        args = [script, *command[1:]]
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        report: dict[str, Any] = json.loads((tmp_path / _option(command, "--json")).read_text())
        return report

    first = run()  # the first scheduled run: no artifact to compare with
    gates = {g["name"]: g["status"] for g in first["gates"]}
    assert gates == {"fail-under": "pass", "max-regression": "skip"}
    junit = ET.parse(tmp_path / _option(command, "--junit")).getroot()
    assert [c.attrib["name"] for c in junit.iter("testcase")] == ["fail-under", "max-regression"]
    assert "Leaderboard" in summary.read_text()
    assert (tmp_path / _option(command, "--database-url").removeprefix("sqlite:///")).is_file()

    # The next run: the download step has put this run's report where --baseline looks.
    baseline = tmp_path / _option(command, "--baseline")
    baseline.parent.mkdir(parents=True)
    shutil.copy(tmp_path / _option(command, "--json"), baseline)
    second = run()  # (this database already holds the finished study: nothing retrains)
    (regression,) = [g for g in second["gates"] if g["name"] == "max-regression"]
    assert regression["status"] == "pass"
    assert _option(command, "--baseline") in regression["reason"]


def test_the_readmes_example_workflow_uses_real_sweep_options() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (example,) = [yaml.safe_load(block) for block in blocks if "tuner sweep" in block]
    assert set(example.get("on", example.get(True))) == {"schedule", "workflow_dispatch"}
    (job,) = example["jobs"].values()
    (line,) = [s["run"] for s in job["steps"] if "tuner sweep" in s.get("run", "")]
    args = shlex.split(line)
    assert args[:2] == ["tuner", "sweep"]
    sweep = typer.main.get_command(app).commands["sweep"]  # type: ignore[attr-defined]
    with sweep.make_context("sweep", args[2:]) as context:  # parses; runs nothing
        assert context.params["fail_under"] == 0.35
        assert context.params["allow_missing_baseline"] is True

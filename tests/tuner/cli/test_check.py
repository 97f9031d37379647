"""`tuner check`: tables, the JSON report, the pruned spec, and exit codes 0, 1 and 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tuner.cli import app, main
from tuner.spec import load_spec


def write(tmp_path: Path, name: str, spec: dict[str, object]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_healthy_spec_exits_0_with_tables_and_a_json_report(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        "ok.yaml",
        {"name": "ok", "task": {"model": "mlp", "hidden": [32], "dataset": "digits"}},
    )
    report = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["check", str(spec), "--json", str(report), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for text in ("overfit one batch", "lr range test", "generalization", "t=0 diagnostics"):
        assert text in result.output
    assert "verdict: ok" in result.output and "proposed search.lr" in result.output
    data = json.loads(report.read_text())
    assert data["verdict"] == "ok" and data["spec_name"] == "ok"
    assert len(data["lr_test"]["decades"]) == 7
    assert data["initializers"][0]["label"] == "kaiming_normal"


def test_a_frozen_model_exits_1_naming_the_problem(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        "frozen.yaml",
        {"name": "frozen", "task": {"plugin": "frozen-mlp", "dataset": "digits"}},
    )
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 1, result.output
    assert "problem: overfit one batch: the model has no trainable parameters" in result.output


def test_prune_inits_writes_a_runnable_spec_without_the_flagged_initializer(
    tmp_path: Path,
) -> None:
    spec = write(
        tmp_path,
        "deep.yaml",
        {
            "name": "deep",
            "task": {"model": "mlp", "hidden": [32] * 8, "dataset": "digits"},
            "search": {"initializer": ["kaiming_normal", {"name": "normal", "std": 1.0e-4}]},
        },
    )
    pruned = tmp_path / "pruned.yaml"
    result = CliRunner().invoke(app, ["check", str(spec), "--prune-inits", "-o", str(pruned)])
    assert result.exit_code == 1, result.output  # the flagged initializer is still a problem
    assert "initializer normal: vanishing signal" in result.output
    assert "dropped: normal" in result.output
    assert [e.name for e in load_spec(pruned).search.initializer] == ["kaiming_normal"]


def test_the_signal_table_shows_the_jacobian_and_the_mean_field(tmp_path: Path) -> None:
    ordered = {"name": "variance_scaling", "scale": 0.5, "distribution": "untruncated_normal"}
    spec = write(
        tmp_path,
        "tanh.yaml",
        {
            "name": "tanh",
            "task": {
                "model": "mlp",
                "hidden": [32] * 11,
                "activation": "tanh",
                "dataset": "digits",
            },
            "search": {"initializer": [ordered, {"name": "orthogonal", "gain": 1.0}]},
        },
    )
    result = CliRunner().invoke(app, ["check", str(spec)], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert "t=0 signal propagation per initializer" in result.output
    assert "problem: initializer variance_scaling: signal cannot cross the network" in result.output
    table = result.output.split("t=0 signal propagation per initializer")[1]
    orthogonal = next(line for line in table.splitlines() if "│ orthogonal" in line)
    # square orthogonal hidden layers, gain 1: sigma_w^2 = chi_1 = 1 (critical), no warning
    assert "│ 1 " in orthogonal and "│ 12 / " in orthogonal and "ok" in orthogonal


def test_output_needs_prune_inits(tmp_path: Path) -> None:
    spec = write(tmp_path, "s.yaml", {"name": "s"})
    result = CliRunner().invoke(app, ["check", str(spec), "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 2 and "--prune-inits" in result.output
    assert not (tmp_path / "out.yaml").exists()


def test_an_invalid_spec_exits_2_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", {"name": "b", "search": {"initializer": ["nope"]}})
    monkeypatch.setattr(sys, "argv", ["tuner", "check", str(bad)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "search.initializer[0].name" in capsys.readouterr().err

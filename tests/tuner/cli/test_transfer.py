"""``tuner transfer``: a tuned study's best trial run at another width, end to end on SQLite."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tuner.cli import app, main
from tuner.spec import parse_spec

SOURCE = """
name: small
task: {model: mlp, hidden: [16, 8], dataset: digits, optimizer: adam}
search:
  initializer: [kaiming_normal, {name: normal, std: {low: 0.01, high: 0.1}}]
  lr: {low: 1.0e-3, high: 1.0e-2, log: true}
  weight_decay: [0.0, 1.0e-4]
  batch_size: [64]
  patience: 2
budget: {n_trials: 3, max_epochs: 2}
pruner: none
seed: 3
"""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A database holding the tuned study ``small`` (width 16)."""
    folder = tmp_path_factory.mktemp("transfer")
    spec = folder / "small.yaml"
    spec.write_text(SOURCE)
    url = f"sqlite:///{folder / 'tuner.db'}"
    result = CliRunner().invoke(app, ["run", str(spec), "--database-url", url])
    assert result.exit_code == 0, result.output
    return folder / "tuner.db", url


def _rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return list(connection.execute(sql, args))


def _best(path: Path) -> tuple[int, dict[str, Any]]:
    rows = _rows(
        path,
        "select trial_number, params_json from tuner_trial_results where study_name = 'small' "
        "and state = 'complete' order by value desc, trial_number limit 1",
    )
    return rows[0][0], json.loads(rows[0][1])


def _study(path: Path, name: str) -> tuple[dict[str, Any], list[tuple[dict, dict]]]:
    (spec,) = _rows(path, "select spec_json from tuner_studies where name = ?", name)[0]
    trials = _rows(
        path,
        "select params_json, manifest_json from tuner_trial_results where study_name = ?",
        name,
    )
    return json.loads(spec), [(json.loads(p), json.loads(m)) for p, m in trials]


def _same_hyperparameters(params: dict[str, Any], best: dict[str, Any]) -> None:
    keys = ("initializer_name", "init_params", "lr", "weight_decay", "batch_size", "patience")
    assert {k: params[k] for k in keys} == {k: best[k] for k in keys}


def test_transfer_under_mup_runs_the_best_trial_at_the_new_width(tuned: tuple[Path, str]) -> None:
    path, url = tuned
    number, best = _best(path)
    result = CliRunner().invoke(app, ["transfer", "small", "--width", "64", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"small #{number} transferred: small-w64-mup" in result.output
    spec, trials = _study(path, "small-w64-mup")
    task = spec["task"]
    assert (task["hidden"], task["parametrization"], task["base_width"]) == ([64, 32], "mup", 16)
    assert task["transferred_from"] == {"study": "small", "trial": number, "width": 16}
    assert spec["budget"]["n_trials"] == 1 and spec["pruner"]["name"] == "none"
    ((params, manifest),) = trials
    _same_hyperparameters(params, best)
    assert manifest["transfer"] == {
        "source_study": "small",
        "source_trial": number,
        "source_width": 16,
        "parametrization": "mup",
        "base_width": 16,
        "width": 64,
        "multiplier": 4.0,
    }
    assert manifest["parametrization"]["multiplier"] == 4.0
    roles = {row["param"]: row["role"] for row in manifest["parametrization"]["params"]}
    assert roles["5.weight"] == "readout" and roles["3.weight"] == "matrix"
    replay = CliRunner().invoke(app, ["replay", "small-w64-mup", "0", "--database-url", url])
    assert replay.exit_code == 0 and "reproduced exactly" in replay.output, replay.output


def test_transfer_under_standard_copies_the_hyperparameters(tuned: tuple[Path, str]) -> None:
    path, url = tuned
    number, best = _best(path)
    args = ["transfer", "small", "--width", "32", "--parametrization", "standard"]
    args += ["--name", "small-sp", "--n-trials", "2", "--database-url", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    spec, trials = _study(path, "small-sp")
    assert (spec["task"]["hidden"], spec["task"]["parametrization"]) == ([32, 16], "standard")
    assert "base_width" not in spec["task"]
    assert len(trials) == 2  # the same configuration, each trial its own seeds
    for params, manifest in trials:
        _same_hyperparameters(params, best)
        assert "parametrization" not in manifest
        assert manifest["transfer"]["parametrization"] == "standard"
        assert (manifest["transfer"]["base_width"], manifest["transfer"]["multiplier"]) == (16, 2)
        assert manifest["transfer"]["source_trial"] == number


def test_transfer_writes_the_definition_without_running_it(
    tuned: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = tuned
    out = tmp_path / "big.yaml"
    args = ["transfer", "small", "--width", "1024", "--write", str(out), "--database-url", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    spec = parse_spec(yaml.safe_load(out.read_text()))
    assert spec.name == "small-w1024-mup" and spec.task.width == 1024  # type: ignore[union-attr]
    assert spec.task.width_multiplier == 64.0  # type: ignore[union-attr]
    assert not _rows(path, "select name from tuner_studies where name = 'small-w1024-mup'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transfer", "missing", "--width", "8"], "no study named 'missing'"),
        (["transfer", "small", "--width", "0"], "Invalid value for '--width'"),
        (["transfer", "small", "--width", "8", "--parametrization", "ntk"], "'ntk' is not one"),
    ],
)
def test_bad_transfers_say_why(
    tuned: tuple[Path, str],
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "argv", ["tuner", *args, "--database-url", tuned[1]])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code in (1, 2)
    assert message in capsys.readouterr().err

"""The `tuner` command line: run, results, error exits."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuner.cli import app, main

SPEC = """
name: cli-study
task: {model: mlp, hidden: [16], dataset: digits}
search:
  initializer: [xavier_uniform, he_normal]
  lr: {low: 0.01, high: 0.3, log: true}
  batch_size: [64]
  patience: 2
budget: {n_trials: 3, max_epochs: 2}
pruner: none
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def test_run_then_rerun_then_results(spec_file: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(spec_file), "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "top 3 of 3 trials" in first.output and "best per initializer" in first.output
    assert "kaiming_normal" in first.output or "xavier_uniform" in first.output
    again = runner.invoke(app, ["run", str(spec_file), "--database-url", url])
    assert again.exit_code == 0 and "already finished" in again.output
    more = runner.invoke(app, ["run", str(spec_file), "--database-url", url, "--n-trials", "4"])
    assert more.exit_code == 0 and "top 4 of 4 trials" in more.output
    shown = runner.invoke(app, ["results", "cli-study", "--database-url", url])
    assert shown.exit_code == 0 and "top 4 of 4 trials" in shown.output


def test_run_in_fast_populations_on_two_slots_of_given_threads(
    spec_file: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'slots.db'}"
    args = ["run", str(spec_file), "--database-url", url, "--n-trials", "4"]
    args += ["--fast", "--population", "2", "--slots", "2", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "top 4 of 4 trials" in result.output
    with sqlite3.connect(tmp_path / "slots.db") as connection:
        manifests = [
            json.loads(m)
            for (m,) in connection.execute("select manifest_json from tuner_trial_results")
        ]
    assert len(manifests) == 4
    assert all(m["deterministic"]["num_threads"] == 1 for m in manifests)
    assert all(m["population"]["fast"] is True for m in manifests)


def test_database_url_from_the_environment(
    spec_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNER_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    result = CliRunner().invoke(app, ["run", str(spec_file), "--n-trials", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["tuner", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def test_invalid_spec_exits_2_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsearch: {lr: {low: 1, high: 0.1}, batch_size: 0}\n")
    assert (
        _main(["run", str(bad), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"], monkeypatch)
        == 2
    )
    err = capsys.readouterr().err
    assert "search.lr" in err and "search.batch_size" in err
    assert not (tmp_path / "x.db").exists()  # nothing written


def test_unknown_study_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'y.db'}"
    assert _main(["migrate", "--database-url", url], monkeypatch) == 0
    capsys.readouterr()
    assert _main(["results", "nope", "--database-url", url], monkeypatch) == 1
    assert "no study named 'nope'" in capsys.readouterr().err


def test_console_script_end_to_end(spec_file: Path, tmp_path: Path) -> None:
    """The installed `tuner` script, as the README runs it, leaves SQL a user can query."""
    script = Path(sys.executable).with_name("tuner")
    env = {**os.environ, "COLUMNS": "160"}
    done = subprocess.run(
        [str(script), "run", str(spec_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "best per initializer" in done.stdout
    with sqlite3.connect(tmp_path / "tuner.db") as con:
        rows = con.execute(
            "select initializer, max(value) from tuner_trial_results group by initializer"
        ).fetchall()
    assert {name for name, _ in rows} <= {"xavier_uniform", "he_normal"}  # Keras names stay
    assert all(0.0 < best <= 1.0 for _, best in rows)


@pytest.mark.postgres
def test_database_passwords_never_appear_in_output(
    postgres_url: str, spec_file: Path, tmp_path: Path
) -> None:
    """The server trusts local connections, so a password in the URL is accepted (and
    ignored) by it: every command that shows the URL must mask it."""
    secret = "s3cret-Pw"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in url
    for args in (
        ["migrate", "--database-url", url],
        ["run", str(spec_file), "--database-url", url],
        ["results", "cli-study", "--database-url", url],
        ["report", "no-such-study", "-o", str(tmp_path / "r.html"), "--database-url", url],
    ):
        result = CliRunner().invoke(app, args)
        assert secret not in result.output, args
    assert "postgres:***@" in CliRunner().invoke(app, ["migrate", "--database-url", url]).output
    bad = CliRunner().invoke(
        app, ["migrate", "--database-url", f"postgresql+nosuch://u:{secret}@h/d"]
    )
    message = str(bad.exception)  # main() prints it as the one error line
    assert secret not in message and "u:***@h/d" in message


def test_off_a_terminal_each_trial_is_one_timestamped_line(spec_file: Path, tmp_path: Path) -> None:
    """CI logs and `docker logs` see every trial as it ends; a resume starts from the
    study's best so far, not this run's."""
    import re

    url = f"sqlite:///{tmp_path / 'log.db'}"
    first = CliRunner().invoke(app, ["run", str(spec_file), "--database-url", url])
    assert first.exit_code == 0, first.output
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    trials = re.findall(rf"^{stamp} cli-study #(\d+): complete .*initializer=", first.output, re.M)
    assert sorted(map(int, trials)) == [0, 1, 2]
    assert re.search(rf"^{stamp} study cli-study: 0/3 trials finished, best —$", first.output, re.M)
    more = CliRunner().invoke(
        app, ["run", str(spec_file), "--database-url", url, "--n-trials", "4"]
    )
    best = re.search(r"study cli-study: 3/4 trials finished, best (\S+)", more.output)
    assert best is not None and best.group(1) != "—"


@pytest.mark.parametrize(
    "args",
    [
        ["results", "nothing"],
        ["status", "nothing"],
        ["replay", "nothing", "0"],
        ["report", "nothing", "-o", "r.html"],
    ],
)
def test_read_only_commands_never_create_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNER_DATABASE_URL", raising=False)
    assert _main(args, monkeypatch) == 1
    assert not (tmp_path / "tuner.db").exists()


def test_log_level_turns_on_timestamped_engine_logs(spec_file: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("tuner")
    url = f"sqlite:///{tmp_path / 'll.db'}"
    ok = subprocess.run(
        [script, "--log-level", "info", "migrate", "--database-url", url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "INFO" in ok.stderr and "T" in ok.stderr.split()[0]
    bad = subprocess.run(
        [script, "--log-level", "loud", "migrate", "--database-url", url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "loud" in bad.stderr

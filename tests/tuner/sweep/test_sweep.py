"""`tuner sweep` embedded: exit codes, every gate both ways, the three reports, baselines.

One real sweep trains the main study once; most cases resume it (finished: nothing trains
again) and judge it with other gates, so a case costs a CLI call, not a study.
"""

from __future__ import annotations

import json
import re
import statistics
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import storage
from tests.tuner.sweep.test_noise import _outcome
from tuner.cli import app
from tuner.sweep import Gates, judge

SPEC = """
name: {name}
task: {{model: mlp, hidden: [16], dataset: digits}}
metric: {metric}
search:
  initializer: [xavier_uniform, kaiming_normal]
  lr: {lr}
  batch_size: 64
  patience: 2
budget: {{n_trials: {n_trials}, max_epochs: 2}}
pruner: none
"""
GOOD_LR = "{low: 0.05, high: 0.2, log: true}"
CLEAN_ENV: dict[str, str | None] = {
    "GITHUB_STEP_SUMMARY": None,
    "TUNER_URL": None,
    "TUNER_TOKEN": None,
    "TUNER_DATABASE_URL": None,
}


@dataclass
class Run:
    code: int
    output: str
    report: dict[str, Any]
    junit: ET.Element
    markdown: str

    def gate(self, name: str) -> dict[str, Any]:
        (found,) = [g for g in self.report["gates"] if g["name"] == name]
        return found

    def cases(self) -> dict[str, ET.Element]:
        return {case.attrib["name"]: case for case in self.junit.iter("testcase")}


def write_spec(
    folder: Path, name: str, *, metric: str = "val_accuracy", lr: str = GOOD_LR, n: int = 3
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, metric=metric, lr=lr, n_trials=n))
    return path


def sweep(
    folder: Path,
    spec: Path,
    *args: str,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Run:
    """`tuner sweep SPEC ARGS` on the folder's database (default), writing all three reports."""
    out = folder / "out"
    reports = {"--json": out / "r.json", "--markdown": out / "r.md", "--junit": out / "r.xml"}
    for path in reports.values():
        path.unlink(missing_ok=True)
    database_url = database_url or f"sqlite:///{folder / 'sweep.db'}"
    command = ["sweep", str(spec), "--database-url", database_url]
    for flag, path in reports.items():
        command += [flag, str(path)]
    result = CliRunner().invoke(app, [*command, *args], env={**CLEAN_ENV, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return Run(
        result.exit_code,
        result.output,
        json.loads(reports["--json"].read_text()),
        ET.parse(reports["--junit"]).getroot(),
        reports["--markdown"].read_text(),
    )


@dataclass
class Swept:
    folder: Path
    spec: Path
    first: Run

    @property
    def best(self) -> float:
        value: float = self.first.report["best"]["value"]
        return value

    def again(self, *args: str, env: dict[str, str] | None = None) -> Run:
        return sweep(self.folder, self.spec, *args, env=env)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    folder = tmp_path_factory.mktemp("sweep")
    spec = write_spec(folder, "main")
    return Swept(folder, spec, sweep(folder, spec, "--fail-under", "0.3"))


def test_a_passing_sweep_writes_every_report(swept: Swept) -> None:
    run = swept.first
    assert run.code == 0, run.output
    report = run.report
    assert (report["passed"], report["exit_code"], report["error"]) == (True, 0, None)
    assert (report["study"], report["metric"], report["direction"]) == (
        "main",
        "val_accuracy",
        "maximize",
    )
    assert report["trials"]["budget"] == 3 and report["trials"]["complete"] == 3
    assert report["status"] == "completed" and report["timed_out"] is False
    assert report["duration_s"] > 0 and report["mode"] == "embedded"
    best = report["best"]
    assert 0.3 <= best["value"] <= 1.0
    assert best["initializer"] in ("xavier_uniform", "kaiming_normal")
    assert best["params"]["lr"] == best["lr"]
    assert report["initializers"][0]["best"] == best["value"]  # best initializer first
    assert [g["name"] for g in report["gates"]] == ["fail-under"]
    assert report["gates"][0]["status"] == "pass"
    # JUnit: one test case per gate, nothing failed.
    assert [c.attrib["name"] for c in run.junit.iter("testcase")] == ["fail-under"]
    assert not list(run.junit.iter("failure")) and run.junit.attrib["failures"] == "0"
    # Markdown: verdict, gates and the leaderboard, one row per trial.
    assert "passed" in run.markdown.splitlines()[0]
    assert "| fail-under | pass |" in run.markdown
    header = (
        "| # | state | stop | initializer | lr | L2 | batch | patience | val_accuracy | epoch |"
    )
    assert header in run.markdown
    rows = [line for line in run.markdown.splitlines() if re.match(r"\| \d+ \| complete \|", line)]
    assert len(rows) == 3
    assert f"{best['value']:.4f}" in run.markdown and "Best per initializer" in run.markdown
    assert "main: top 3 of 3 trials" in run.output  # the rich leaderboard on the console


def test_fail_under_is_reached_at_the_best_and_missed_above_it(swept: Swept) -> None:
    at = swept.again("--fail-under", repr(swept.best))
    assert at.code == 0 and at.gate("fail-under")["status"] == "pass"
    above = swept.again("--fail-under", repr(swept.best + 0.001))
    assert above.code == 1, above.output
    assert above.report["passed"] is False and above.report["exit_code"] == 1
    gate = above.gate("fail-under")
    assert gate["status"] == "fail" and "misses" in gate["reason"]
    (failure,) = above.cases()["fail-under"].iter("failure")
    assert "misses" in failure.attrib["message"]
    assert "| fail-under | fail |" in above.markdown and "failed" in above.markdown.splitlines()[0]


def test_expect_initializer_ignores_case_and_fails_on_another(swept: Swept) -> None:
    best = swept.first.report["best"]["initializer"]
    ok = swept.again("--expect-initializer", best.upper())
    assert ok.code == 0 and ok.gate("expect-initializer")["status"] == "pass"
    other = swept.again("--expect-initializer", "orthogonal", "--expect-initializer", "zeros")
    assert other.code == 1
    assert (
        f"uses {best}; expected orthogonal or zeros" in other.gate("expect-initializer")["reason"]
    )
    unknown = swept.again("--expect-initializer", "nonsense")
    assert unknown.code == 2 and "unknown initializer 'nonsense'" in unknown.report["error"]


def _shifted_report(swept: Swept, shift: float) -> Path:
    report = dict(swept.first.report)
    report["best"] = {**report["best"], "value": swept.best + shift}
    path = swept.folder / f"baseline{shift:+}.json"
    path.write_text(json.dumps(report))
    return path


def test_baseline_file_regression_is_detected(swept: Swept) -> None:
    better = _shifted_report(swept, 0.05)  # the earlier sweep was 0.05 better
    regressed = swept.again("--baseline", str(better), "--max-regression", "0.01")
    assert regressed.code == 1, regressed.output
    gate = regressed.gate("max-regression")
    assert (
        gate["status"] == "fail"
        and "0.05 worse" in gate["reason"]
        and str(better) in gate["reason"]
    )
    assert len(list(regressed.cases()["max-regression"].iter("failure"))) == 1
    tolerated = swept.again("--baseline", str(better), "--max-regression", "0.1")
    assert tolerated.code == 0 and tolerated.gate("max-regression")["status"] == "pass"
    itself = swept.again("--baseline", str(_shifted_report(swept, 0.0)))
    assert itself.code == 0 and "equal" in itself.gate("max-regression")["reason"]


def test_baseline_study_regression_is_detected(swept: Swept) -> None:
    weak = write_spec(swept.folder, "weak", lr="1.0e-4", n=1)  # barely trains: far worse
    worse = sweep(swept.folder, weak, "--baseline", "main", "--max-regression", "0.05")
    assert worse.code == 1, worse.output
    assert "study main" in worse.gate("max-regression")["reason"]
    better = swept.again("--baseline", "weak")
    assert better.code == 0 and "better" in better.gate("max-regression")["reason"]


@pytest.mark.postgres
def test_a_sweep_on_postgresql_and_a_baseline_study_there(
    postgres_url: str, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, "pg", n=1)
    first = sweep(tmp_path, spec, "--fail-under", "0.1", database_url=postgres_url)
    assert first.code == 0, first.output
    assert first.report["source"].startswith("postgresql+psycopg://")
    again = sweep(
        tmp_path,
        write_spec(tmp_path, "pg2", n=1),
        "--baseline",
        "pg",
        "--max-regression",
        "1",
        database_url=postgres_url,
    )
    assert again.code == 0 and "study pg" in again.gate("max-regression")["reason"]


def test_a_missing_baseline_stops_the_sweep_unless_allowed(swept: Swept) -> None:
    missing = swept.again("--baseline", "gone.json")
    assert missing.code == 2 and "no file and no study named 'gone.json'" in missing.report["error"]
    (error,) = missing.cases()["sweep"].iter("error")
    assert "gone.json" in error.attrib["message"]
    allowed = swept.again("--baseline", "gone.json", "--allow-missing-baseline")
    assert allowed.code == 0 and allowed.gate("max-regression")["status"] == "skip"
    assert len(list(allowed.cases()["max-regression"].iter("skipped"))) == 1


def test_val_loss_gates_follow_the_minimizing_direction(swept: Swept) -> None:
    spec = write_spec(swept.folder, "loss", metric="val_loss", n=1)
    first = sweep(swept.folder, spec)
    assert first.code == 0 and first.report["direction"] == "minimize"
    loss = first.report["best"]["value"]
    assert sweep(swept.folder, spec, "--fail-under", repr(loss + 0.01)).code == 0  # below X
    missed = sweep(swept.folder, spec, "--fail-under", repr(loss - 0.01))
    assert missed.code == 1 and "(minimize)" in missed.gate("fail-under")["reason"]
    lower = swept.folder / "lower.json"
    lower.write_text(json.dumps({**first.report, "best": {"value": loss - 0.05}}))
    regressed = sweep(swept.folder, spec, "--baseline", str(lower), "--max-regression", "0.01")
    assert regressed.code == 1 and "0.05 worse" in regressed.gate("max-regression")["reason"]
    # a baseline of another metric does not compare: the sweep cannot be judged
    accuracy = swept.folder / "accuracy.json"
    accuracy.write_text(json.dumps(swept.first.report))
    other = sweep(swept.folder, spec, "--baseline", str(accuracy))
    assert other.code == 2 and "measures val_accuracy" in other.report["error"]


def test_an_invalid_definition_exits_2_naming_the_field(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "bad", lr="{low: 1, high: 0.1}")
    run = sweep(tmp_path, spec, "--fail-under", "0.5")
    assert run.code == 2
    assert "search.lr" in run.report["error"] and run.report["best"] is None
    assert [c.attrib["name"] for c in run.junit.iter("testcase")] == ["sweep"]
    assert run.junit.attrib["errors"] == "1"
    assert "could not run" in run.markdown and "search.lr" in run.markdown


def test_timeout_with_too_few_trials_exits_2_and_min_trials_lowers_the_bar(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, "partial", n=3)
    db = f"sqlite:///{tmp_path / 'sweep.db'}"
    ran = CliRunner().invoke(
        app, ["run", str(spec), "--database-url", db, "--n-trials", "1"], env=CLEAN_ENV
    )
    assert ran.exit_code == 0, ran.output  # 1 of the budget's 3 trials finished
    # The limit has passed before the next trial can start (deterministic: no trial runs).
    short = sweep(tmp_path, spec, "--timeout", "1e-9", "--fail-under", "0.1")
    assert short.code == 2 and short.report["timed_out"] is True
    assert "at 1 of 3 trials; judging needs 3" in short.report["error"]
    enough = sweep(tmp_path, spec, "--timeout", "1e-9", "--min-trials", "1", "--fail-under", "0.1")
    assert enough.code == 0, enough.output
    assert enough.report["timed_out"] is True and enough.report["trials"]["finished"] == 1
    assert "stopped by the time limit" in enough.markdown


def test_the_markdown_is_appended_to_the_github_step_summary(swept: Swept) -> None:
    summary = swept.folder / "step-summary.md"
    summary.write_text("earlier step\n")
    run = swept.again("--fail-under", "0.3", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert run.code == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n") and run.markdown in text


@pytest.mark.parametrize(
    "args",
    [
        ["--max-regression", "0.1"],  # without --baseline
        ["--beyond-seed-noise", "2"],  # without --baseline
        ["--timeout", "0"],
        ["--url", "http://127.0.0.1:9"],  # beside --database-url
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str]) -> None:
    spec = write_spec(tmp_path, "opts")
    command = ["sweep", str(spec), "--database-url", f"sqlite:///{tmp_path / 'x.db'}", *args]
    result = CliRunner().invoke(app, command, env=CLEAN_ENV)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "x.db").exists()  # nothing ran


def test_expect_initializer_reads_the_model_wide_name_of_a_label() -> None:
    """A label carries layer groups and repeated names; the gate reads the stored name."""
    outcome = _outcome(0.9, ())
    best = outcome.board.study.best
    assert best is not None
    for label, name in [
        ("kaiming_normal", "kaiming_normal"),
        ("xavier_normal(gain=auto)", "xavier_normal"),
        ("normal#2", "normal"),
        ("he_normal; recurrent=orthogonal; input=eye", "he_normal"),
    ]:
        trial = best.model_copy(
            update={"initializer": label, "params_json": {"initializer_name": name}}
        )
        study = outcome.board.study.model_copy(update={"best": trial})
        grouped = replace(outcome, board=replace(outcome.board, study=study))
        (ok,) = judge(grouped, Gates(expect_initializers=(name,)))
        (other,) = judge(grouped, Gates(expect_initializers=("zeros",)))
        assert (ok.status, other.status) == ("pass", "fail"), label
        assert f"uses {name}; expected zeros" in other.reason


CROSSED = SPEC + "replicates: {{init: 2, data: 2}}\n"


def _best_replicate_std(folder: Path, study: str, trial: int) -> float:
    db = storage.Database(f"sqlite:///{folder / 'sweep.db'}")
    try:
        with db.session() as session:
            values = [r.value for r in storage.get_trial_replicates(session, study, trial)]
    finally:
        db.dispose()
    assert len(values) == 4 and all(v is not None for v in values)
    return statistics.stdev(v for v in values if v is not None)


def test_a_regression_within_the_seed_noise_passes_and_beyond_it_fails(tmp_path: Path) -> None:
    spec = tmp_path / "crossed.yaml"
    spec.write_text(CROSSED.format(name="crossed", metric="val_accuracy", lr=GOOD_LR, n_trials=2))
    first = sweep(tmp_path, spec)
    assert first.code == 0, first.output
    assert "seed variance:" in first.output and "every trial" in first.output  # the leaderboard
    best = first.report["best"]
    std = _best_replicate_std(tmp_path, "crossed", best["trial_number"])
    assert std > 0

    def baseline(drop: float) -> Path:
        path = tmp_path / f"baseline-{drop:.3g}.json"
        path.write_text(json.dumps({**first.report, "best": {"value": best["value"] + drop}}))
        return path

    noise = ["--beyond-seed-noise", "2"]
    within = sweep(tmp_path, spec, "--baseline", str(baseline(1.0 * std)), *noise)
    gate = within.gate("max-regression")
    assert within.code == 0 and gate["status"] == "pass", gate
    numbers = f"2 x seed std {std:.4g} (of trial {best['trial_number']}'s 4 replicates)"
    assert numbers in gate["reason"] and f"= {2 * std:.4g})" in gate["reason"]
    beyond = sweep(tmp_path, spec, "--baseline", str(baseline(3.0 * std)), *noise)
    gate = beyond.gate("max-regression")
    assert beyond.code == 1 and gate["status"] == "fail" and numbers in gate["reason"]
    assert f"{3 * std:.4g} worse" in gate["reason"]
    plain = sweep(tmp_path, spec, "--baseline", str(baseline(1.0 * std)))  # no noise: fails
    assert plain.code == 1 and "seed" not in plain.gate("max-regression")["reason"]
    shown = CliRunner().invoke(
        app, ["results", "crossed", "--database-url", f"sqlite:///{tmp_path / 'sweep.db'}"]
    )
    assert shown.exit_code == 0 and "seed variance:" in shown.output


def test_seed_noise_without_replicates_stops_before_anything_runs(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "plain")
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"best": {"value": 0.9}, "metric": "val_accuracy"}))
    run = sweep(tmp_path, spec, "--baseline", str(base), "--beyond-seed-noise", "2")
    assert run.code == 2 and "'plain' trains one per trial" in run.report["error"]
    assert not (tmp_path / "sweep.db").exists()

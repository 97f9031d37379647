"""Study reports from a real run: the HTML page, its figures, the dashboard copy, a screenshot."""

from __future__ import annotations

import datetime
import io
import json
import shutil
import subprocess
import wsgiref.util
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna_dashboard
import pytest
import yaml
from typer.testing import CliRunner

import storage
from tuner.cli import app
from tuner.errors import TunerError
from tuner.report import attach_to_dashboard, build_report
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.variance import by_initializer, seed_variance

SPEC = """
name: report-study
task: {model: mlp, hidden: [16, 16], dataset: digits}
search:
  initializer: [xavier_normal, kaiming_normal, {name: normal, std: 0.01}]
  lr: {low: 0.01, high: 0.3, log: true}
  weight_decay: [0.0, 1.0e-4, 1.0e-3]
  batch_size: [64]
  patience: 2
budget: {n_trials: 6, max_epochs: 2}
sampler: random
pruner: none
replicates: {init: 2, data: 2}
"""
SECTIONS = (
    "facts",
    "leaderboard",
    "initializers",
    "seed-variance",
    "learning-curves",
    "depth-profile",
    "signal-propagation",
    "lr-weight-decay",
    "importances",
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class _Page(HTMLParser):
    """What the tests look at in a report: sections, scripts, links, and the figures' JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.srcs: list[str] = []  # every src/href attribute
        self.scripts = 0
        self.figures: dict[str, dict[str, Any]] = {}
        self.missing: list[str] = []  # sentences shown instead of a figure
        self._figure: str | None = None
        self._in_missing = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.srcs += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "section":
            self.sections.append(a["id"] or "")
        elif tag == "script":
            self.scripts += 1
            if a.get("class") == "plot-data":
                self._figure = (a["data-target"] or "").removeprefix("plot-")
        elif tag == "p" and a.get("class") == "missing":
            self._in_missing = True

    def handle_endtag(self, tag: str) -> None:
        self._figure = None if tag == "script" else self._figure
        self._in_missing = False if tag == "p" else self._in_missing

    def handle_data(self, data: str) -> None:
        if self._figure is not None:
            self.figures[self._figure] = json.loads(data)
        if self._in_missing:
            self.missing.append(data)


def _parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[storage.Database]:
    """A real small study (6 trials, 2 epochs, 3 initializers) in a SQLite file."""
    folder = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{folder / 'tuner.db'}"
    summary = run_study(parse_spec(yaml.safe_load(SPEC)), database_url=url)
    assert summary.complete
    db = storage.Database(url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def rows(run_db: storage.Database) -> list[storage.TrialResult]:
    with run_db.session() as session:
        return storage.list_trial_results(session, "report-study")


@pytest.fixture(scope="module")
def page(run_db: storage.Database) -> str:
    return build_report(run_db, "report-study")


def test_page_is_self_contained_with_every_section(page: str) -> None:
    parsed = _parse(page)
    assert parsed.sections == list(SECTIONS)
    assert parsed.srcs == []  # no script, stylesheet or image is fetched
    assert page.count("* plotly.js v") == 1  # the library inlined once
    assert parsed.scripts == 2 + len(parsed.figures)  # plotly.js, the renderer, one per figure
    assert set(parsed.figures) == {
        "values",
        "seed-variance",
        "learning-curves",
        "depth-profile",
        "signal-propagation",
        "lr-weight-decay",
        "importances",
    }
    assert parsed.missing == []


def test_tables_show_the_runs_trials(page: str, rows: list[storage.TrialResult]) -> None:
    leaderboard = page.split('id="leaderboard"')[1].split("</section>")[0]
    best = rows[0]
    assert f"<td>{best.value:.4f}</td>" in leaderboard
    assert leaderboard.count("<tr>") == 1 + len(rows)
    complete = sum(r.state == "complete" for r in rows)
    assert f"{len(rows)} finished of 6: {complete} complete" in page


def test_seed_variance_splits_init_data_and_residual(
    page: str, run_db: storage.Database, rows: list[storage.TrialResult]
) -> None:
    with run_db.session() as session:
        replicated = storage.replicates_by_trial(session, "report-study")
    groups = by_initializer((init, reps) for _, init, reps in replicated)
    complete = [r for r in rows if r.state == "complete"]
    assert len(replicated) == len(complete) and groups[0][1].n_tables == len(complete)
    section = page.split('id="seed-variance"')[1].split("</section>")[0]
    every = groups[0][1]
    assert f"<td>{every.init.ss:.4g}</td><td>{len(complete)}</td>" in section  # 2 x 2: df 1
    assert f"<td>{every.residual.variance:.4g}</td>" in section
    # per initializer (every trial first), per trial, the pooled ANOVA table: each with a head
    assert section.count("<tr>") == (1 + len(groups)) + (1 + len(complete)) + (1 + 3)
    best = rows[0]
    best_split = seed_variance(next(reps for n, _, reps in replicated if n == best.trial_number))
    assert best_split is not None
    assert (
        f"<td class=l>{best.trial_number}</td><td class=l>{best.initializer}</td>"
        f"<td>{best.value:.4f}</td><td>{best_split.init.std:.3g}</td>"
    ) in section
    bars = _parse(page).figures["seed-variance"]["data"]
    assert [t["name"] for t in bars] == ["init seed", "data order", "residual (interaction, rest)"]
    labels = [f"{label or 'every trial'} ({v.n_tables})" for label, v in groups]
    assert bars[0]["y"] == labels[::-1]  # every trial on top
    for i in range(len(labels)):  # each bar's shares add up to the whole
        assert sum(t["x"][i] for t in bars) == pytest.approx(1)
    assert bars[0]["x"][-1] == pytest.approx(every.init.share)


def test_learning_curves_one_group_per_initializer(
    page: str, rows: list[storage.TrialResult]
) -> None:
    inits = {r.initializer for r in rows}
    assert len(inits) >= 2  # a comparison, not one initializer
    traces = _parse(page).figures["learning-curves"]["data"]
    assert len(traces) == len(rows)  # one line per trial
    assert {t["legendgroup"] for t in traces} == inits
    assert sorted(t["name"] for t in traces if t["showlegend"]) == sorted(inits)
    by_number = {r.trial_number: r for r in rows}
    for t in traces:  # each trial's line: its initializer, an epoch axis from 1
        row = by_number[int(t["hovertemplate"].split()[1])]
        assert t["name"] == row.initializer
        assert t["x"] == list(range(1, row.epochs_run + 1))
    colors = {t["legendgroup"]: t["line"]["color"] for t in traces}
    assert len(set(colors.values())) == len(inits)


def test_depth_profile_one_line_per_initializer(page: str, rows: list[storage.TrialResult]) -> None:
    fig = _parse(page).figures["depth-profile"]
    act = [t for t in fig["data"] if t.get("xaxis", "x") == "x"]
    grad = [t for t in fig["data"] if t.get("xaxis") == "x2"]
    inits = {r.initializer for r in rows}
    assert sorted(t["name"] for t in act) == sorted(inits) == sorted(t["name"] for t in grad)
    for t in act + grad:
        assert t["x"] == [0, 1, 2]  # layer_index: two hidden layers and the output layer
        assert all(y is not None and y > 0 for y in t["y"])
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["yaxis2"]["type"] == "log"
    # What theory predicts, visible in the plot: std 0.01 weights shrink the signal layer by
    # layer; Kaiming keeps it.
    act_by = {t["name"]: t["y"] for t in act}
    if "normal" in act_by:
        assert act_by["normal"][-1] < act_by["normal"][0] / 10
    if "kaiming_normal" in act_by:
        first, last = act_by["kaiming_normal"][0], act_by["kaiming_normal"][-1]
        assert first / 2 < last < first * 2


def test_value_and_scatter_and_importances(page: str, rows: list[storage.TrialResult]) -> None:
    figures = _parse(page).figures
    inits = {r.initializer for r in rows}
    boxes = [t for t in figures["values"]["data"] if t["type"] == "box"]
    assert {t["name"] for t in boxes} == inits
    assert sum(len(t["y"]) for t in boxes) == sum(r.state == "complete" for r in rows)
    scatter = figures["lr-weight-decay"]
    valued = {r.initializer for r in rows if r.value is not None}
    assert {t["name"] for t in scatter["data"]} - {"no value"} == valued
    assert sorted(x for t in scatter["data"] for x in t["x"]) == sorted(r.lr for r in rows)
    assert scatter["layout"]["xaxis"]["type"] == "log"
    assert scatter["layout"]["yaxis"]["type"] == "log"
    if any(r.weight_decay == 0 for r in rows):  # 0 drawn on the log axis, labelled 0
        assert scatter["layout"]["yaxis"]["ticktext"][0] == "0"
    bars = figures["importances"]["data"][0]
    assert set(bars["y"]) <= {"initializer", "lr", "weight_decay", "normal.std"}
    assert abs(sum(bars["x"]) - 1) < 1e-6


def test_study_without_trials_or_optuna_study_still_renders(
    run_db: storage.Database,
) -> None:
    t0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    with run_db.session() as session:
        storage.create_study_record(
            session,
            name="rows-only",
            spec_json={"name": "rows-only"},
            metric="val_loss",
            direction="minimize",
            n_trials=3,
        )
    empty = _parse(build_report(run_db, "rows-only"))
    assert empty.sections == list(SECTIONS) and empty.figures == {}
    assert len(empty.missing) == 8  # the leaderboard and each of the seven figures
    assert any("No complete trial has a crossed seed design" in m for m in empty.missing)
    with run_db.session() as session:
        storage.upsert_trial_result(
            session,
            storage.TrialResultData(
                study_name="rows-only",
                trial_number=0,
                state="complete",
                stop_reason="patience",
                initializer="orthogonal",
                lr=0.1,
                weight_decay=0.0,
                batch_size=32,
                patience=2,
                epochs_run=3,
                duration_s=1.0,
                started_at=t0,
                finished_at=t0 + datetime.timedelta(seconds=1),
                value=0.25,
            ),
        )
    one = _parse(build_report(run_db, "rows-only"))
    assert set(one.figures) == {"values", "lr-weight-decay"}
    assert any("Optuna has no study" in m for m in one.missing)
    assert any("No diagnostics" in m for m in one.missing)
    assert any("signal propagation at initialization was measured" in m for m in one.missing)
    with pytest.raises(storage.StudyNotFoundError):
        build_report(run_db, "no-such-study")
    with pytest.raises(TunerError, match="Optuna has no study"):
        attach_to_dashboard(run_db, "rows-only")


def _dashboard_get(db: storage.Database, path: str) -> Any:
    """GET ``path`` from optuna-dashboard's WSGI app on the same database, as JSON."""
    environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(
        optuna_dashboard.wsgi(db.optuna_storage())(environ, lambda s, h, e=None: status.append(s))
    )
    assert status[0].startswith("200"), status
    return json.loads(body)


def test_cli_writes_the_page_and_attaches_to_the_dashboard(
    run_db: storage.Database, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    args = ["report", "report-study", "-o", str(out), "--database-url", run_db.url]
    for _ in range(2):  # a second report replaces the plots rather than adding copies
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "7 plot(s) and a note attached" in result.output
    assert _parse(out.read_text()).sections == list(SECTIONS)
    studies = _dashboard_get(run_db, "/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in studies if s["study_name"] == "report-study")
    detail = _dashboard_get(run_db, f"/api/studies/{study_id}")
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert sorted(graphs) == sorted(
        f"tuner-{k}"
        for k in (
            "values",
            "seed-variance",
            "learning-curves",
            "depth-profile",
            "signal-propagation",
            "lr-weight-decay",
            "importances",
        )
    )
    page_fig = _parse(out.read_text()).figures["depth-profile"]
    assert graphs["tuner-depth-profile"]["data"] == page_fig["data"]
    assert "init-tuner report: report-study" in detail["note"]["body"]
    assert (
        "| kaiming_normal |" in detail["note"]["body"]
        or "| xavier_normal |" in (detail["note"]["body"])
    )


def test_cli_errors(run_db: storage.Database, tmp_path: Path) -> None:
    base = ["--database-url", run_db.url, "--no-dashboard"]
    missing = CliRunner().invoke(app, ["report", "nope", "-o", str(tmp_path / "x.html"), *base])
    assert missing.exit_code != 0 and not (tmp_path / "x.html").exists()
    bad_dir = tmp_path / "no" / "such" / "dir" / "x.html"
    unwritable = CliRunner().invoke(app, ["report", "report-study", "-o", str(bad_dir), *base])
    assert unwritable.exit_code != 0
    assert "cannot write the report" in str(unwritable.exception)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_headless_chromium_draws_the_plots(page: str, tmp_path: Path) -> None:
    """The page rendered offline by a real browser: every figure is drawn, in colour."""
    from PIL import Image

    html_file, png = tmp_path / "report.html", tmp_path / "report.png"
    html_file.write_text(page)
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
            f"--screenshot={png}",
            "--window-size=1400,6000",
            html_file.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(png).convert("RGB")
    assert image.size == (1400, 6000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 2000  # not blank, not text only (~1100)
    # Every initializer's line colour is on the page (drawn by plotly.js, not in the HTML).
    present = {rgb for _, rgb in colours}
    fig = _parse(page).figures["learning-curves"]
    for hex_colour in {t["line"]["color"] for t in fig["data"]}:
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in present, hex_colour
    # The lr x weight decay colour bar: Viridis from end to end.
    assert {(0x44, 0x01, 0x54), (0xFD, 0xE7, 0x25)} <= present

"""A sweep's reports: a JSON summary (also the next sweep's baseline), Markdown and JUnit XML.

JSON is for machines and for ``--baseline``; Markdown is for people (a CI job summary); JUnit
XML has one test case per gate, so CI test views show which gate failed and why.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tuner.client._models import Leaderboard, Trial
from tuner.sweep._sweep import SweepReport

REPORT_VERSION = 1
_VERDICT = {0: "passed", 1: "failed: a quality gate", 2: "could not run"}
_ICON = {0: "✅", 1: "❌", 2: "⚠️"}


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _best(trial: Trial | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    keys = ("trial_number", "value", "initializer", "lr", "weight_decay", "batch_size", "patience")
    return {**{k: getattr(trial, k) for k in keys}, "params": trial.params_json}


def _trial(trial: Trial) -> dict[str, Any]:
    row = {k: v for k, v in (_best(trial) or {}).items() if k != "params"}
    return {**row, "state": trial.state, "stop_reason": trial.stop_reason}


def to_json(report: SweepReport) -> dict[str, Any]:
    """The machine summary: verdict, best trial, per-initializer bests, gates, counts."""
    out: dict[str, Any] = {
        "version": REPORT_VERSION,
        "study": report.study,
        "passed": report.passed,
        "exit_code": report.exit_code,
        "error": report.error,
        "mode": report.mode,
        "source": report.source,
        "duration_s": round(report.duration_s, 3),
        "gates": [
            {"name": g.name, "status": g.status, "passed": g.status != "fail", "reason": g.reason}
            for g in report.gates
        ],
    }
    if report.outcome is None:
        return {**out, "best": None}
    board = report.outcome.board
    study = board.study
    return {
        **out,
        "metric": study.metric,
        "direction": study.direction,
        "status": study.status,
        "timed_out": report.outcome.timed_out,
        "trials": {
            "budget": study.n_trials,
            "finished": report.outcome.finished,
            **study.counts.model_dump(),
        },
        "best": _best(study.best),
        "initializers": [s.model_dump() for s in board.initializers],
        "top": [_trial(t) for t in board.top],
    }


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def leaderboard_markdown(board: Leaderboard) -> list[str]:
    """The top trials and the best result per initializer, as Markdown tables."""
    metric = board.study.metric
    header = ["#", "state", "stop", "initializer", "lr", "L2", "batch", "patience", metric]
    header.append("epoch")
    rows = [
        [
            str(t.trial_number),
            t.state,
            t.stop_reason,
            f"`{t.initializer}`",
            f"{t.lr:.3g}",
            f"{t.weight_decay:.2g}",
            str(t.batch_size),
            str(t.patience),
            _num(t.value),
            f"{t.best_epoch if t.best_epoch is not None else '—'}/{t.epochs_run}",
        ]
        for t in board.top
    ]
    lines = [f"### Leaderboard: top {len(board.top)} of {board.total} trials", ""]
    lines += _table(header, rows)
    per_init = [
        [f"`{s.initializer}`", str(s.count), str(s.complete), _num(s.best), _num(s.mean)]
        for s in board.initializers
    ]
    init_header = ["initializer", "trials", "complete", f"best {metric}", f"mean {metric}"]
    return [*lines, "", "### Best per initializer", "", *_table(init_header, per_init)]


def to_markdown(report: SweepReport) -> str:
    """Verdict, best result, gates, and the leaderboard (for people and job summaries)."""
    code = report.exit_code
    lines = [f"## {_ICON[code]} Sweep `{report.study}`: {_VERDICT[code]}", ""]
    if report.error is not None:
        lines += [f"**The sweep could not run:** {_cell(report.error)}", ""]
    outcome = report.outcome
    if outcome is not None:
        study = outcome.board.study
        counts = study.counts
        where = f"{report.mode}, {report.source}"
        limit = " · stopped by the time limit" if outcome.timed_out else ""
        lines.append(
            f"{outcome.finished}/{study.n_trials} trials ({counts.complete} complete, "
            f"{counts.pruned} pruned, {counts.fail} failed) in {report.duration_s:.1f} s "
            f"({where}){limit}"
        )
        if study.best is not None:
            best = study.best
            lines.append(
                f"\nbest **{study.metric}** ({study.direction}): **{_num(best.value)}**, "
                f"trial {best.trial_number}, `{best.initializer}`, lr {best.lr:.3g}, "
                f"L2 {best.weight_decay:.2g}, batch {best.batch_size}, patience {best.patience}"
            )
        lines.append("")
    if report.gates:
        rows = [[g.name, g.status, g.reason] for g in report.gates]
        lines += [*_table(["gate", "result", "detail"], rows), ""]
    if outcome is not None:
        lines += [*leaderboard_markdown(outcome.board), ""]
    return "\n".join(lines)


def to_junit(report: SweepReport) -> str:
    """JUnit XML: one test case per gate (a run that could not happen: one erroring case)."""
    suite = ET.Element(
        "testsuite",
        name=f"tuner sweep {report.study}",
        time=f"{report.duration_s:.3f}",
    )
    outcome = report.outcome
    if outcome is not None:
        props = ET.SubElement(suite, "properties")
        study = outcome.board.study
        values = {"metric": study.metric, "direction": study.direction, "status": study.status}
        if study.best is not None:
            values["best_value"] = repr(study.best.value)
            values["best_initializer"] = study.best.initializer
        for key, value in values.items():
            ET.SubElement(props, "property", name=key, value=str(value))
    classname = f"tuner.sweep.{report.study}"
    failures = skipped = errors = 0
    if report.error is not None:
        case = ET.SubElement(suite, "testcase", classname=classname, name="sweep")
        ET.SubElement(case, "error", message=report.error).text = report.error
        errors = 1
    for gate in report.gates:
        case = ET.SubElement(suite, "testcase", classname=classname, name=gate.name)
        if gate.status == "fail":
            ET.SubElement(case, "failure", message=gate.reason).text = gate.reason
            failures += 1
        elif gate.status == "skip":
            ET.SubElement(case, "skipped", message=gate.reason)
            skipped += 1
        else:
            ET.SubElement(case, "system-out").text = gate.reason
    tests = len(report.gates) + errors
    suite.attrib.update(
        tests=str(tests), failures=str(failures), errors=str(errors), skipped=str(skipped)
    )
    root = ET.Element("testsuites", tests=str(tests), failures=str(failures), errors=str(errors))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_reports(
    report: SweepReport,
    *,
    json_file: Path | None = None,
    markdown_file: Path | None = None,
    junit_file: Path | None = None,
    step_summary: Path | None = None,
) -> None:
    """Write the requested reports (folders created), and append the Markdown to
    ``step_summary`` (GitHub's ``$GITHUB_STEP_SUMMARY``) when given."""
    outputs = (
        (json_file, lambda: json.dumps(to_json(report), indent=2) + "\n"),
        (markdown_file, lambda: to_markdown(report)),
        (junit_file, lambda: to_junit(report)),
    )
    for path, render in outputs:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(), encoding="utf-8")
    if step_summary is not None:
        with step_summary.open("a", encoding="utf-8") as out:
            out.write(to_markdown(report) + "\n")

"""The report page (HTML, plotly.js inlined once) and its Markdown note for the dashboard."""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.offline

import storage
from tuner.report import _seeds
from tuner.report._data import ReportData
from tuner.report._signal import signal_table

#: Sections of the page: element id, heading, the figure it shows (or None), an explanation.
SECTIONS: tuple[tuple[str, str, str | None, str], ...] = (
    ("facts", "Study", None, ""),
    ("leaderboard", "Leaderboard", None, ""),
    (
        "initializers",
        "Best and median value per initializer",
        "values",
        "Complete trials only.",
    ),
    ("seed-variance", "Seed variance: init seed vs data order", "seed-variance", _seeds.NOTE),
    (
        "learning-curves",
        "Learning curves",
        "learning-curves",
        "The metric after each epoch, as reported to Optuna; one colour per initializer.",
    ),
    (
        "depth-profile",
        "Signal at initialization, by depth",
        "depth-profile",
        "Measured before the first update on a fixed calibration batch (means over each "
        "initializer's trials). Activations or gradients that shrink or grow layer after "
        "layer (Glorot & Bengio 2010, He et al. 2015) mean the network starts badly.",
    ),
    (
        "signal-propagation",
        "Signal propagation at initialization, from theory",
        "signal-propagation",
        "The input-output Jacobian's squared singular values on the calibration batch (their "
        "spread: Saxe et al. 2014, Pennington et al. 2017) and, for fully connected tanh/sigmoid "
        "nets, the mean-field chi_1 and depth scale xi_c (Schoenholz et al. 2017).",
    ),
    (
        "lr-weight-decay",
        "Learning rate x weight decay",
        "lr-weight-decay",
        "One marker per trial: its colour is the value, its shape the initializer; grey "
        "crosses are trials without a value (failed or diverged).",
    ),
    (
        "importances",
        "Parameter importances",
        "importances",
        "Optuna's parameter importances over complete trials.",
    ),
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1f2933; background: #f5f7fa; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { margin: 0 0 4px; font-size: 28px; }
.sub { color: #52606d; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #e4e7eb; border-radius: 8px;
          padding: 16px 24px; margin: 16px 0; }
h2 { font-size: 20px; margin: 4px 0 8px; }
p.note { color: #52606d; margin: 4px 0 12px; }
p.missing { color: #8a4b08; background: #fffbea; padding: 12px; border-radius: 6px; }
table { border-collapse: collapse; font-size: 14px; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; text-align: right; }
th { background: #f0f4f8; }
td.l, th.l { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; font-family: ui-monospace, monospace;
  font-size: 13px; overflow-wrap: anywhere; }
.plot { width: 100%; }
"""

_RENDER_JS = """
for (const el of document.querySelectorAll("script.plot-data")) {
  const fig = JSON.parse(el.textContent);
  Plotly.newPlot(el.dataset.target, fig.data, fig.layout, {responsive: true, displaylogo: false});
}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _sig(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _init_params(params: Mapping[str, Any]) -> str:
    """``std=0.00104, mode=fan_in``: an initializer's own parameters, short."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "—" if value is None else str(value)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), default=str)


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], left: int = 0) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (text), the rest numbers."""

    def cells(tag: str, values: Sequence[object]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{_e(v)}</{tag}>" for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', head)}</tr></thead><tbody>{body}</tbody></table>"


def counts_by_state(data: ReportData) -> dict[str, int]:
    """Finished trials per state, then running/pending attempts (when there are any)."""
    counts = Counter(r.state for r in data.rows)
    return {**{s: counts.get(s, 0) for s in ("complete", "pruned", "fail")}, **data.live}


def complete_values(data: ReportData) -> dict[str, list[float]]:
    """Values of complete trials per initializer (every initializer with a row, maybe none)."""
    values: dict[str, list[float]] = {}
    for row in data.rows:
        values.setdefault(row.initializer, [])
        if row.state == "complete" and row.value is not None:
            values[row.initializer].append(row.value)
    return values


def initializer_table(
    data: ReportData,
) -> list[tuple[str, int, int, float | None, float | None, float | None]]:
    """(initializer, trials, complete, best, median, mean), best initializer first."""
    values = complete_values(data)
    trials = Counter(r.initializer for r in data.rows)
    pick = max if data.maximize else min
    out = [
        (
            name,
            trials[name],
            len(v),
            pick(v) if v else None,
            statistics.median(v) if v else None,
            statistics.fmean(v) if v else None,
        )
        for name, v in values.items()
    ]
    sign = -1 if data.maximize else 1
    return sorted(out, key=lambda t: (t[3] is None, sign * (t[3] or 0.0), t[0]))


def _facts(data: ReportData) -> str:
    counts = counts_by_state(data)
    states = " · ".join(f"{n} {s}" for s, n in counts.items())
    facts: list[tuple[str, str]] = [
        ("metric", f"{data.metric} ({data.direction})"),
        ("status", data.status),
        ("trials", f"{len(data.rows)} finished of {data.target}: {states}"),
    ]
    if data.rows:
        start = min(r.started_at for r in data.rows)
        end = max(r.finished_at for r in data.rows)
        train_s = sum(r.duration_s for r in data.rows)
        facts.append(
            (
                "duration",
                f"{(end - start).total_seconds():.1f} s wall clock "
                f"({start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC), "
                f"{train_s:.1f} s of trial time",
            )
        )
    facts.append(("created", f"{data.created_at:%Y-%m-%d %H:%M:%S} UTC"))
    spec = data.spec
    for key in ("task", "budget", "sampler", "pruner", "seed", "replicates"):
        if key in spec:
            facts.append((key, _compact(spec[key])))
    for dim, space in spec.get("search", {}).items():
        facts.append((f"search.{dim}", _compact(space)))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _leaderboard(data: ReportData, top: int) -> str:
    if not data.rows:
        return '<p class="missing">No trial has finished yet.</p>'
    extras = list(dict.fromkeys(n for r in data.rows for n in r.params_json.get("extra") or {}))
    head = ["#", "state", "stop", "initializer", "init params", "lr", "weight decay"]
    head += ["batch", "patience", *extras, data.metric, "best epoch", "epochs", "seconds"]
    rows = [
        (
            r.trial_number,
            r.state,
            r.stop_reason,
            r.initializer,
            _init_params(r.params_json.get("init_params") or {}),
            f"{r.lr:.3g}",
            f"{r.weight_decay:.2g}",
            r.batch_size,
            r.patience,
            *(_param((r.params_json.get("extra") or {}).get(n)) for n in extras),
            _num(r.value),
            r.best_epoch if r.best_epoch is not None else "—",
            r.epochs_run,
            f"{r.duration_s:.1f}",
        )
        for r in data.rows[:top]
    ]
    caption = (
        f'<p class="note">Top {len(rows)} of {len(data.rows)} finished trials, best first.</p>'
    )
    return caption + _table(head, rows, left=5)


def _initializers(data: ReportData) -> str:
    head = ["initializer", "trials", "complete", f"best {data.metric}", "median", "mean"]
    rows = [(n, t, c, _num(b), _num(m), _num(a)) for n, t, c, b, m, a in initializer_table(data)]
    return _table(head, rows, left=1)


def _depth_table(profiles: Sequence[storage.DepthProfile]) -> str:
    by_init: dict[str, list[storage.DepthProfile]] = {}
    for p in profiles:
        by_init.setdefault(p.initializer, []).append(p)
    head = ["initializer", "trials", "layers", "act std (first)", "act std (last)", "last / first"]
    rows = []
    for name, layers in by_init.items():
        first, last = layers[0].act_std, layers[-1].act_std
        ratio = last / first if first and last is not None else None
        n = max(p.n_trials for p in layers)
        rows.append((name, n, len(layers), _sig(first), _sig(last), _sig(ratio)))
    return _table(head, rows, left=1)


def _signal_table(data: ReportData) -> str:
    rows = signal_table(data.rows, data.signals)
    head = ["initializer", "trials", "spread", "m_JJT", "chi_1", "xi_c", "deeper than 6 xi_c"]
    note = '<p class="note">Medians over each initializer\'s measured trials.</p>'
    return note + _table(head, rows, left=1) if rows else ""


def _plot(key: str, fig: go.Figure | str) -> str:
    if not isinstance(fig, go.Figure):
        return f'<p class="missing">{_e(fig)}</p>'
    payload = str(fig.to_json()).replace("</", "<\\/")  # safe inside <script>
    return (
        f'<div class="plot" id="plot-{key}"></div>'
        f'<script type="application/json" class="plot-data" data-target="plot-{key}">'
        f"{payload}</script>"
    )


def render(data: ReportData, figures: Mapping[str, go.Figure | str], *, top: int = 20) -> str:
    """The page: study facts, tables, and each figure (or a sentence why it is missing)."""
    extra = {
        "facts": _facts(data),
        "leaderboard": _leaderboard(data, top),
        "initializers": _initializers(data),
        "depth-profile": _depth_table(data.profiles) if data.profiles else "",
        "seed-variance": "".join(
            _table(head, rows, left=left) for head, rows, left in _seeds.seed_tables(data, top)
        ),
        "signal-propagation": _signal_table(data),
    }
    parts = []
    for section, heading, key, note in SECTIONS:
        body = f'<p class="note">{_e(note)}</p>' if note else ""
        if key is not None:
            body += _plot(key, figures[key])
        body += extra.get(section, "")
        parts.append(f'<section id="{section}"><h2>{_e(heading)}</h2>{body}</section>')
    title = f"init-tuner report: {data.study}"
    sub = (
        f"{data.metric} ({data.direction}) · status {data.status} · "
        f"generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{_e(data.study)}</h1><p class="sub">{_e(sub)}</p>'
        + "".join(parts)
        + f"</main><script>{plotly.offline.get_plotlyjs()}</script>"
        f"<script>{_RENDER_JS}</script></body></html>\n"
    )


def markdown_note(data: ReportData, figures: Mapping[str, go.Figure | str]) -> str:
    """The study's note in the Optuna dashboard: the summary, and what the plots show."""
    counts = ", ".join(f"{n} {s}" for s, n in counts_by_state(data).items())
    lines = [
        f"## init-tuner report: {data.study}",
        "",
        f"{data.metric} ({data.direction}); {len(data.rows)} of {data.target} trials "
        f"finished ({counts}). Generated {data.generated_at:%Y-%m-%d %H:%M} UTC by "
        f"`tuner report {data.study}`.",
        "",
        f"| initializer | trials | complete | best {data.metric} | median | mean |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, t, c, b, m, a in initializer_table(data):
        lines.append(f"| {name} | {t} | {c} | {_num(b)} | {_num(m)} | {_num(a)} |")
    drawn = [h for _, h, k, _ in SECTIONS if k and not isinstance(figures[k], str)]
    lines += ["", "Plots saved with this study: " + ("; ".join(drawn) or "none yet") + ".", ""]
    missing = [f"- {h}: {f}" for _, h, k, _ in SECTIONS if k and isinstance(f := figures[k], str)]
    return "\n".join(lines + missing) + "\n"

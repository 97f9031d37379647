"""The report's t=0 signal-propagation figure and table, from the trials' stored signal.

Left: each trial's input-output Jacobian spread (``sigma^2_JJT / m_JJT^2``, log axis) against
its value, one colour per initializer: whether a near-isometric start (a small spread) went
with a better result. Right, when any trial is a fully connected tanh/sigmoid net: its
mean-field ``chi_1`` per initializer around the critical line ``chi_1 = 1`` (below: ordered,
above: chaotic); a cross marks a trial whose depth exceeds ``6 xi_c``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

import storage
from tuner.report._figures import _LAYOUT, _MARGIN

Signals = Mapping[int, storage.TrialSignalData]


def _xi(value: float | None) -> str:
    return "—" if value is None else "∞" if math.isinf(value) else f"{value:.3g}"


def signal_propagation(
    rows: Sequence[storage.TrialResultData],
    signals: Signals,
    colors: Mapping[str, str],
    metric: str,
) -> go.Figure | str:
    """Jacobian spread vs value, and chi_1 per initializer (a sentence when nothing was
    measured)."""
    measured = [(r, signals[r.trial_number]) for r in rows if r.trial_number in signals]
    spread = [(r, s) for r, s in measured if s.jacobian_spread is not None and r.value is not None]
    field = [(r, s) for r, s in measured if s.chi_1 is not None]
    if not spread and not field:
        return "No trial's signal propagation at initialization was measured."
    panels = int(bool(spread)) + int(bool(field))
    titles = ["Jacobian spread vs " + metric] if spread else []
    titles += ["mean-field chi_1 (1: critical)"] if field else []
    fig = make_subplots(rows=1, cols=panels, subplot_titles=titles, horizontal_spacing=0.12)
    shown: set[str] = set()
    for name in sorted({r.initializer for r, _ in spread + field}):
        color = colors.get(name, "#636efa")
        mine = [(r, s) for r, s in spread if r.initializer == name]
        if mine:
            fig.add_trace(
                go.Scatter(
                    x=[max(s.jacobian_spread or 0.0, 1e-12) for _, s in mine],
                    y=[r.value for r, _ in mine],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in shown,
                    marker={"size": 10, "color": color},
                    customdata=[[r.trial_number, s.jacobian_mean_sq] for r, s in mine],
                    hovertemplate=(
                        "trial %{customdata[0]}: spread %{x:.3g}, m_JJT %{customdata[1]:.3g}"
                        f"<br>{metric} %{{y:.4f}}<extra>{name}</extra>"
                    ),
                ),
                row=1,
                col=1,
            )
            shown.add(name)
        mine = [(r, s) for r, s in field if r.initializer == name]
        if mine:
            fig.add_trace(
                go.Scatter(
                    x=[name] * len(mine),
                    y=[s.chi_1 for _, s in mine],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in shown,
                    marker={
                        "size": 11,
                        "color": color,
                        "symbol": ["x" if s.warning else "circle" for _, s in mine],
                    },
                    customdata=[[r.trial_number, _xi(s.xi_c), s.depth] for r, s in mine],
                    hovertemplate=(
                        "trial %{customdata[0]}: chi_1 %{y:.4f}, xi_c %{customdata[1]}, "
                        f"depth %{{customdata[2]}}<extra>{name}</extra>"
                    ),
                ),
                row=1,
                col=panels,
            )
            shown.add(name)
    if spread:
        fig.update_xaxes(type="log", title_text="sigma^2_JJT / m_JJT^2 (0: isometry)", row=1, col=1)
        fig.update_yaxes(title_text=metric, row=1, col=1)
    if field:
        fig.add_hline(y=1.0, line_dash="dash", line_color="#7b8794", row=1, col=panels)
        fig.update_yaxes(title_text="chi_1 (< 1 ordered, > 1 chaotic)", row=1, col=panels)
    fig.update_layout(
        title="signal propagation at initialization (x: deeper than 6 xi_c)",
        legend_title="initializer",
        **{**_LAYOUT, "margin": {**_MARGIN, "t": 100}},
    )
    return fig


def signal_table(
    rows: Sequence[storage.TrialResultData], signals: Signals
) -> list[tuple[str, int, str, str, str, str, int]]:
    """Per initializer: (name, trials measured, median spread, median m_JJT, median chi_1,
    median xi_c, trials warned), in name order."""

    def median(values: list[float | None]) -> float | None:
        found = [v for v in values if v is not None]
        return statistics.median(found) if found else None

    def g(value: float | None) -> str:
        return "—" if value is None else f"{value:.3g}"

    out = []
    for name in sorted({r.initializer for r in rows if r.trial_number in signals}):
        mine = [
            signals[r.trial_number]
            for r in rows
            if r.initializer == name and r.trial_number in signals
        ]
        out.append(
            (
                name,
                len(mine),
                g(median([s.jacobian_spread for s in mine])),
                g(median([s.jacobian_mean_sq for s in mine])),
                g(median([s.chi_1 for s in mine])),
                _xi(median([s.xi_c for s in mine])),
                sum(s.warning is not None for s in mine),
            )
        )
    return out

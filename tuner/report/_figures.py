"""The report's plotly figures, built from plain data (no database access here).

Each builder returns a figure, or a sentence saying why there is none (too few trials, no
diagnostics), so a report of a young or odd study still renders. Every initializer keeps
one colour across all figures; traces of one initializer share a legend group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

import storage
from tuner.variance import SeedVariance

_PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Dark24
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")
_GREY = "#7b8794"
_MARGIN = {"l": 70, "r": 30, "t": 60}
_LAYOUT = {"template": "plotly_white", "height": 440, "margin": _MARGIN}


@dataclass(frozen=True)
class Curve:
    """One trial's metric per epoch (Optuna's intermediate values)."""

    trial_number: int
    initializer: str
    state: str
    epochs: list[int]
    values: list[float]


def initializer_colors(initializers: Sequence[str]) -> dict[str, str]:
    """One colour per initializer, fixed by name order (the same in every figure)."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(sorted(set(initializers)))}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def values_by_initializer(
    values: Mapping[str, Sequence[float]], colors: Mapping[str, str], metric: str, maximize: bool
) -> go.Figure | str:
    """Box plot of complete trials' values per initializer, every trial a point, best starred."""
    present = {name: list(v) for name, v in values.items() if v}
    if not present:
        return "No complete trial has a value yet."
    fig = go.Figure()
    pick = max if maximize else min
    for name, vals in present.items():
        fig.add_trace(
            go.Box(
                y=vals,
                name=name,
                legendgroup=name,
                marker_color=colors[name],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                boxmean=True,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[name],
                y=[pick(vals)],
                mode="markers",
                name=f"{name} best",
                legendgroup=name,
                showlegend=False,
                marker={"symbol": "star", "size": 16, "color": colors[name], "line_width": 1},
                hovertemplate=f"best {metric}: %{{y:.4f}}<extra>{name}</extra>",
            )
        )
    fig.update_layout(
        title=f"{metric} per initializer (box: median and quartiles, dashed: mean, star: best)",
        yaxis_title=metric,
        showlegend=False,
        **_LAYOUT,
    )
    return fig


def learning_curves(
    curves: Sequence[Curve], colors: Mapping[str, str], metric: str
) -> go.Figure | str:
    """The metric per epoch of every trial, coloured by initializer (one legend entry each)."""
    drawn = [c for c in curves if c.epochs]
    if not drawn:
        return "No trial has reported a value per epoch yet."
    fig = go.Figure()
    shown: set[str] = set()
    for curve in sorted(drawn, key=lambda c: (c.initializer, c.trial_number)):
        fig.add_trace(
            go.Scatter(
                x=curve.epochs,
                y=curve.values,
                mode="lines+markers" if len(curve.epochs) == 1 else "lines",
                name=curve.initializer,
                legendgroup=curve.initializer,
                showlegend=curve.initializer not in shown,
                line={"color": colors[curve.initializer], "width": 1.5},
                opacity=0.75,
                hovertemplate=(
                    f"trial {curve.trial_number} ({curve.state})<br>"
                    f"epoch %{{x}}: %{{y:.4f}}<extra>{curve.initializer}</extra>"
                ),
            )
        )
        shown.add(curve.initializer)
    fig.update_layout(
        title=f"learning curves: {metric} per epoch, one line per trial",
        xaxis_title="epoch",
        yaxis_title=metric,
        legend_title="initializer",
        **_LAYOUT,
    )
    return fig


def depth_profile(
    profiles: Sequence[storage.DepthProfile], colors: Mapping[str, str]
) -> go.Figure | str:
    """Activation and gradient std per layer depth at t=0, one line per initializer (log y)."""
    if not profiles:
        return "No diagnostics at initialization were recorded for this study's trials."
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("activation std by depth", "weight-gradient std by depth"),
        horizontal_spacing=0.1,
    )
    by_init: dict[str, list[storage.DepthProfile]] = {}
    for p in profiles:
        by_init.setdefault(p.initializer, []).append(p)
    for name, layers in by_init.items():
        layers.sort(key=lambda p: p.layer_index)
        n = max(p.n_trials for p in layers)
        for col, field in ((1, "act_std"), (2, "grad_std")):
            ys = [getattr(p, field) for p in layers]
            fig.add_trace(
                go.Scatter(
                    x=[p.layer_index for p in layers],
                    # a log axis has no place for 0: such points are left out (a gap)
                    y=[y if _finite(y) and y > 0 else None for y in ys],
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line={"color": colors[name], "width": 2},
                    hovertemplate=(
                        f"layer %{{x}}: {field} %{{y:.3g}}<extra>{name} (mean of {n})</extra>"
                    ),
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="layer depth (0 = first layer)", dtick=1)
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="mean std over the initializer's trials", row=1, col=1)
    fig.update_layout(
        title="signal at initialization: a good initializer keeps it flat with depth",
        legend_title="initializer",
        **{**_LAYOUT, "margin": {**_MARGIN, "t": 100}},
    )
    return fig


def lr_weight_decay(
    rows: Sequence[storage.TrialResultData], colors: Mapping[str, str], metric: str
) -> go.Figure | str:
    """Learning rate against L2 lambda (log-log), colour = value, symbol = initializer.

    Trials without a value (failed, diverged) are grey crosses. A weight decay of 0 has no
    place on a log axis: it is drawn one decade below the smallest positive one, labelled 0.
    """
    if not rows:
        return "No trial has finished yet."
    positive = [r.weight_decay for r in rows if r.weight_decay > 0]
    floor = min(positive) / 10 if positive else 1e-6

    def points(mine: list[storage.TrialResultData], name: str, marker: dict[str, Any]) -> None:
        shown = f"{metric} %{{marker.color:.4f}}" if "coloraxis" in marker else "no value"
        fig.add_trace(
            go.Scatter(
                x=[r.lr for r in mine],
                y=[r.weight_decay if r.weight_decay > 0 else floor for r in mine],
                mode="markers",
                name=name,
                legendgroup=name,
                customdata=[[r.trial_number, r.weight_decay, r.stop_reason] for r in mine],
                marker={"size": 12, **marker},
                hovertemplate=(
                    "trial %{customdata[0]}: lr %{x:.3g}, weight decay %{customdata[1]:.3g}"
                    f"<br>{shown} (%{{customdata[2]}})<extra>{name}</extra>"
                ),
            )
        )

    fig = go.Figure()
    valued = [r for r in rows if _finite(r.value)]
    for i, name in enumerate(sorted({r.initializer for r in valued})):
        mine = [r for r in valued if r.initializer == name]
        symbol = _SYMBOLS[i % len(_SYMBOLS)]
        line = {"width": 1.5, "color": colors[name]}
        color = [r.value for r in mine]
        points(
            mine, name, {"symbol": symbol, "color": color, "coloraxis": "coloraxis", "line": line}
        )
    if failed := [r for r in rows if not _finite(r.value)]:
        grey = {"symbol": "x-thin-open", "color": _GREY, "line": {"width": 2, "color": _GREY}}
        points(failed, "no value", grey)
    yaxis: dict[str, object] = {"type": "log", "title": "weight decay (L2 lambda)"}
    if any(r.weight_decay == 0 for r in rows):
        top = max(positive, default=floor * 10)
        first, last = math.floor(math.log10(floor)) + 1, math.ceil(math.log10(top))
        ticks = [10.0**d for d in range(first, last + 1)]
        yaxis |= {"tickvals": [floor, *ticks], "ticktext": ["0", *(f"{t:g}" for t in ticks)]}
    fig.update_layout(
        title=f"learning rate x weight decay, coloured by {metric}",
        xaxis={"type": "log", "title": "learning rate", "exponentformat": "power"},
        yaxis=yaxis,
        coloraxis={"colorscale": "Viridis", "colorbar": {"title": metric, "x": 1.02}},
        legend={"title": "initializer", "x": 1.15},
        **_LAYOUT,
    )
    return fig


def importances(found: Mapping[str, float] | None, note: str | None) -> go.Figure | str:
    """Optuna's parameter importances as horizontal bars, most important on top."""
    if not found:
        return note or "No parameter importances are available."
    ordered = sorted(found.items(), key=lambda kv: kv[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in ordered],
            y=[k for k, _ in ordered],
            orientation="h",
            marker_color="#636efa",
            text=[f"{v:.2f}" for _, v in ordered],
            textposition="auto",
        )
    )
    fig.update_layout(
        title="parameter importances (Optuna's default evaluator; they sum to 1)",
        xaxis_title="importance",
        **{**_LAYOUT, "height": max(260, 60 + 40 * len(ordered))},
    )
    return fig


#: The three sources of a seed-variance split: attribute, legend name, colour.
SEED_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("init", "init seed", "#636efa"),
    ("data", "data order", "#ef553b"),
    ("residual", "residual (interaction, rest)", _GREY),
)


def seed_variance(
    groups: Sequence[tuple[str | None, SeedVariance]], missing: str
) -> go.Figure | str:
    """Each group's replicate spread split into init seed, data order and residual: stacked
    horizontal bars of the shares, every trial on top; ``missing`` when there is no group."""
    if not groups:
        return missing
    if not (shown := [(label, v) for label, v in groups if v.init.share is not None]):
        return "Every crossed trial's replicates have one value: no spread to split."
    labels = [f"{label or 'every trial'} ({found.n_tables})" for label, found in reversed(shown)]
    fig = go.Figure()
    for attr, name, color in SEED_SOURCES:
        sources = [getattr(found, attr) for _, found in reversed(shown)]
        fig.add_trace(
            go.Bar(
                x=[s.share for s in sources],
                y=labels,
                orientation="h",
                name=name,
                marker_color=color,
                customdata=[[s.std, s.variance] for s in sources],
                text=[f"{s.share:.0%}" for s in sources],
                textposition="inside",
                hovertemplate=(
                    f"{name}: %{{x:.1%}} of the variance, std %{{customdata[0]:.3g}} "
                    "(variance %{customdata[1]:.3g})<extra>%{y}</extra>"
                ),
            )
        )
    fig.update_layout(
        barmode="stack",
        title="where the spread across seeds comes from (trials pooled in brackets)",
        xaxis={"title": "share of one replicate's variance", "tickformat": ".0%", "range": [0, 1]},
        legend={"title": "source", "orientation": "h", "y": -0.25},
        **{**_LAYOUT, "height": max(280, 160 + 45 * len(shown))},
    )
    return fig

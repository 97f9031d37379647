"""Rich renderings shared by commands: a study's leaderboard, its status, a sweep's gates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.cli._common import console
from tuner.cli._common import fmt as _fmt
from tuner.client import Leaderboard, SeedVarianceGroup, Study
from tuner.sweep import GateResult


def progress_bar() -> Progress:
    """The trials bar of run, submit --wait and sweep: fields ``best`` and ``status``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials · best [green]{task.fields[best]}[/] · {task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def show_leaderboard(board: Leaderboard) -> None:
    """Top trials, then the best result per initializer."""
    study = board.study
    metric = study.metric
    title = (
        f"{study.name}: top {len(board.top)} of {board.total} trials ({metric}, {study.direction})"
    )
    table = Table(title=title)
    extras = extra_names(r.params_json for r in board.top)
    columns = ("#", "state", "stop", "initializer", "lr", "L2", "batch", "pat.", *extras)
    for col in (*columns, metric, "epoch"):
        table.add_column(
            col, justify="left" if col in ("state", "stop", "initializer") else "right"
        )
    for r in board.top:
        extra = r.params_json.get("extra") or {}
        table.add_row(
            str(r.trial_number),
            r.state,
            r.stop_reason,
            r.initializer,
            f"{r.lr:.3g}",
            f"{r.weight_decay:.2g}",
            str(r.batch_size),
            str(r.patience),
            *(_value(extra.get(name)) for name in extras),
            _fmt(r.value),
            f"{r.best_epoch or '—'}/{r.epochs_run}",
        )
    console.print(table)
    inits = Table(title="best per initializer")
    for col in ("initializer", "trials", "complete", f"best {metric}", f"mean {metric}"):
        inits.add_column(col, justify="left" if col == "initializer" else "right")
    for s in board.initializers:
        inits.add_row(s.initializer, str(s.count), str(s.complete), _fmt(s.best), _fmt(s.mean))
    console.print(inits)
    if board.seed_variance:
        show_seed_variance(board.seed_variance)


def _share(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def show_seed_variance(groups: Sequence[SeedVarianceGroup]) -> None:
    """Init seed vs data order vs residual, pooled over every trial and per initializer."""
    title = "seed variance: init seed x data order, two-way ANOVA (each trial's, averaged)"
    table = Table(title=title)
    head = ("initializer", "trials", "init std", "data std", "resid. std", "init", "data", "resid.")
    for col in head:
        table.add_column(col, justify="left" if col == "initializer" else "right")
    for g in groups:
        sources = (g.init, g.data, g.residual)
        table.add_row(
            g.initializer or "every trial",
            str(g.n_tables),
            *(f"{s.std:.3g}" for s in sources),
            *(_share(s.share) for s in sources),
        )
    console.print(table)


def extra_names(params: Iterable[Mapping[str, Any]]) -> list[str]:
    """The extra hyperparameters (beyond the five) the rows were searched over, in order."""
    return list(dict.fromkeys(name for p in params for name in p.get("extra") or {}))


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "—" if value is None else str(value)


def show_study(study: Study) -> None:
    """Status, trial counts by state, and the best trial so far."""
    c = study.counts
    console.print(
        f"[bold]{study.name}[/]: {study.status} · {study.metric} ({study.direction}) · "
        f"{c.finished}/{study.n_trials} trials finished ({c.complete} complete, {c.pruned} "
        f"pruned, {c.fail} failed) · {c.running} running · {c.pending} pending",
        highlight=False,
    )
    if study.error:
        console.print(f"[red]failed:[/] {study.error}", highlight=False)
    best = study.best
    if best is None:
        console.print("no complete trial yet")
        return
    console.print(
        f"best {study.metric} [green]{_fmt(best.value)}[/]: trial {best.trial_number}, "
        f"{best.initializer}, lr {best.lr:.3g}, L2 {best.weight_decay:.2g}, batch "
        f"{best.batch_size}, patience {best.patience} ({best.stop_reason}, epoch "
        f"{best.best_epoch}/{best.epochs_run})",
        highlight=False,
    )


def show_gates(gates: Sequence[GateResult]) -> None:
    style = {"pass": "green", "fail": "red", "skip": "yellow"}
    table = Table(title="gates")
    for col in ("gate", "result", "detail"):
        table.add_column(col)
    for gate in gates:
        table.add_row(gate.name, f"[{style[gate.status]}]{gate.status}[/]", gate.reason)
    console.print(table)

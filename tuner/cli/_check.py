"""``tuner check``: the preflight of a study definition, as tables and an exit code."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.table import Table

from tuner.cli._common import app, console, quiet_optuna
from tuner.spec import load_spec

if TYPE_CHECKING:
    from tuner.preflight import InitializerCheck, PreflightReport

_STATUS = {"pass": "[green]pass[/]", "fail": "[red]fail[/]", "skipped": "[yellow]skipped[/]"}
_DECADE = {"improved": "[green]improved[/]", "flat": "flat", "diverged": "[red]diverged[/]"}


def _g(value: float | None, spec: str = ".3g") -> str:
    return "—" if value is None else format(value, spec)


def _lr_detail(report: PreflightReport) -> str:
    lr = report.lr_test
    if lr.reason or lr.proposed_lr is None:
        return lr.reason or ""
    low, high = lr.proposed_lr["low"], lr.proposed_lr["high"]
    return (
        f"best lr {_g(lr.best_lr)}, diverges at {_g(lr.diverges_at)}; proposed "
        f"search.lr: {{low: {low:g}, high: {high:g}, log: true}}"
    )


def _checks_table(report: PreflightReport) -> Table:
    table = Table(title=f"preflight of {report.spec_name} ({report.task} on {report.device})")
    for col in ("check", "status", "detail"):
        table.add_column(col)
    o, lr, g = report.overfit, report.lr_test, report.generalization
    table.add_row(
        "overfit one batch",
        _STATUS[o.status],
        o.reason
        or f"loss {_g(o.initial_loss)} -> {_g(o.final_loss)} on {o.rows} rows in {o.steps} "
        f"Adam steps (lr {o.lr:g}, {report.reference_initializer} init)",
    )
    table.add_row("lr range test", _STATUS[lr.status], _lr_detail(report))
    table.add_row(
        "generalization",
        _STATUS[g.status],
        g.reason
        or f"val accuracy {_g(g.val_accuracy)} (chance {_g(g.chance_accuracy)}), val loss "
        f"{_g(g.val_loss)} (chance {_g(g.chance_loss)}) after {g.epochs} epochs at lr {_g(g.lr)}",
    )
    flagged = [c.label for c in report.initializers if c.flagged]
    table.add_row(
        "t=0 diagnostics",
        _STATUS["fail" if flagged else "pass"],
        f"flagged: {', '.join(flagged)}"
        if flagged
        else f"{len(report.initializers)} initializer(s), none flagged",
    )
    return table


def _lr_table(report: PreflightReport) -> Table:
    lr = report.lr_test
    title = (
        f"lr range test: {lr.steps} {lr.optimizer} steps per lr, batch {lr.batch_size}, "
        f"loss from {_g(lr.initial_loss)}"
    )
    table = Table(title=title, min_width=len(title) + 4)
    for col in ("lr", "final loss", "change", "status"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for d in lr.decades:
        best = " [bold](best)[/]" if d.lr == lr.best_lr else ""
        table.add_row(f"{d.lr:g}", _g(d.final_loss), _g(d.change, "+.3g"), _DECADE[d.status] + best)
    return table


def _init_row(c: InitializerCheck) -> list[str]:
    params = ", ".join(
        [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.params.items()]
        + [f"{group}: {label}" for group, label in c.groups.items()]  # each group's first choice
    )
    if not c.layers:
        return [c.label, params, "—", "—", "—", f"[yellow]{c.error or 'no layers measured'}[/]"]
    first, last = c.layers[0], c.layers[-1]
    dead = max((d.dead_frac for d in c.layers if d.dead_frac is not None), default=None)
    saturated = max(
        (d.saturated_frac for d in c.layers if d.saturated_frac is not None), default=None
    )
    worst = "—" if dead is None and saturated is None else f"{max(dead or 0, saturated or 0):.0%}"
    verdict = "[red]" + "; ".join(c.problems) + "[/]" if c.problems else "[green]ok[/]"
    stds = f"{first.act_std:.3g} -> {last.act_std:.3g}"
    grads = f"{first.grad_std:.3g} -> {last.grad_std:.3g}"
    return [c.label, params, stds, grads, worst, verdict]


def _init_table(report: PreflightReport) -> Table:
    table = Table(title="t=0 diagnostics per initializer (first -> last layer)")
    for col in ("initializer", "params", "act std", "grad std", "dead/sat.", "verdict"):
        table.add_column(col)
    for check in report.initializers:
        table.add_row(*_init_row(check))
    return table


def _xi(xi: float | None) -> str:
    return "—" if xi is None else "∞" if math.isinf(xi) else f"{xi:.3g}"


def _signal_row(c: InitializerCheck) -> list[str]:
    from tuner.training import DEPTH_FACTOR  # loaded already: the preflight ran

    s = c.signal
    if s is None:
        return [c.label, "—", "—", "—", "—", "—", f"[yellow]{c.error or 'not measured'}[/]"]
    jacobian = "—" if s.jacobian_mean_sq is None else _g(s.jacobian_mean_sq)
    spread = "—" if s.jacobian_spread is None else f"{s.jacobian_spread:.3g} ({s.jacobian_samples})"
    notes = [n for n in (s.jacobian_skipped, s.mean_field_skipped) if n]
    if s.chi_1 is None:
        return [c.label, jacobian, spread, "—", "—", "—", "[dim]" + "; ".join(notes) + "[/]"]
    verdict = f"[red]{s.warning}[/]" if s.warning else "[green]ok[/]"
    depth = f"{s.depth} / {_xi(None if s.xi_c is None else DEPTH_FACTOR * s.xi_c)}"
    return [c.label, jacobian, spread, _g(s.chi_1), _xi(s.xi_c), depth, verdict]


def _signal_table(report: PreflightReport) -> Table:
    table = Table(title="t=0 signal propagation per initializer (Jacobian; mean field)")
    for col in ("initializer", "m_JJT", "spread (n)", "chi_1", "xi_c", "depth / 6 xi_c", "note"):
        table.add_column(col)
    for check in report.initializers:
        table.add_row(*_signal_row(check))
    return table


def show_report(report: PreflightReport) -> None:
    console.print(_checks_table(report))
    if report.lr_test.decades:
        console.print(_lr_table(report))
    console.print(_init_table(report))
    if any(c.signal is not None for c in report.initializers):
        console.print(_signal_table(report))
    for note in report.notes:
        console.print(f"[dim]note:[/] {note}", highlight=False)
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    verdict = "[green]ok[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]"
    console.print(f"verdict: {verdict} ({report.duration_s:.1f} s)")


@app.command()
def check(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="study definition (YAML/JSON)")],
    prune_inits: Annotated[
        bool, typer.Option(help="drop the initializers the t=0 diagnostics flag")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write the pruned spec here (needs --prune-inits)"),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="write the whole report here as JSON")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
) -> None:
    """Preflight a study before it runs: overfit one batch, an lr range test, a generalization
    check and the t=0 diagnostics of every initializer.

    Exit code 0 when every check passes, 1 when problems are found, 2 for an invalid spec.
    """
    if output is not None and not prune_inits:
        raise typer.BadParameter(
            "--output writes the pruned spec; add --prune-inits", param_hint="--output"
        )
    from tuner.preflight import run_preflight

    quiet_optuna()
    spec = load_spec(spec_file)
    with console.status(f"preflight of {spec.name}..."):
        report = run_preflight(spec, device=device, prune_inits=prune_inits)
    show_report(report)
    if json_file is not None:
        json_file.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if output is not None and report.pruned_spec is not None:
        output.write_text(yaml.safe_dump(report.pruned_spec, sort_keys=False), encoding="utf-8")
        dropped = ", ".join(report.pruned) or "none"
        console.print(f"pruned spec written to {output} (dropped: {dropped})", highlight=False)
    raise typer.Exit(0 if report.ok else 1)

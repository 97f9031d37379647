"""Shared pieces of the command line: the typer app, consoles, common options."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Hyperparameter tuning for PyTorch with weight initialization as a search dimension.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; default: $TUNER_DATABASE_URL, else sqlite:///./tuner.db",
        show_default=False,
    ),
]
Population = Annotated[
    int,
    typer.Option(
        min=0, help="trials trained together as one stacked model: 0 auto (memory), 1 off, K"
    ),
]
Slots = Annotated[int, typer.Option(min=1, help="trials (or populations) run at once")]
Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="intra-op threads per slot [default: on CPU, the cores shared out among slots]",
        show_default=False,
    ),
]
FastMath = Annotated[
    bool | None,
    typer.Option(
        "--fast/--exact",
        help="populations in bf16/TF32 with fused optimizers, or exactly as single trials "
        "[default: fast on CUDA, exact on CPU]",
        show_default=False,
    ),
]


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"

"""Shared pieces of the command line: the typer app, consoles, common options."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tuner.errors import TunerError

if TYPE_CHECKING:
    import storage

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
        help="fast: TF32 for fp32 on CUDA (every trial) and populations in bf16 with one "
        "optimizer step for the whole stack; exact: full fp32 (cuDNN's TF32 off too), "
        "populations as single trials "
        "[default: fast on CUDA, exact on CPU]",
        show_default=False,
    ),
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="populations' stacked step through torch.compile (one graph for every "
        "population size; compiling takes seconds to a minute first)",
    ),
]


def quiet_optuna() -> None:
    """Optuna's own log lines off (the progress bar says it better); for engine commands."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_database(database_url: str | None, *, read_only: bool = False) -> storage.Database:
    """The database a command uses (the URL, else $TUNER_DATABASE_URL, else ./tuner.db).

    ``read_only``: a command that only reads never creates one: a SQLite file that does not
    exist is an error naming it."""
    import storage

    quiet_optuna()
    url = storage.resolve_database_url(database_url)
    path = storage.sqlite_path(url)
    if read_only and path is not None and not path.exists():
        raise TunerError(f"no database at {path}: nothing has run here (give --database-url?)")
    return storage.Database(url)


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`storage.StorageError`, without importing storage: a
    command that never loaded it cannot have raised one."""
    storage = sys.modules.get("storage")
    return storage is not None and isinstance(exc, storage.StorageError)


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"

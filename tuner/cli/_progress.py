"""What a run shows as it goes: a progress bar on a terminal, else one timestamped line per
finished trial (CI logs, ``docker logs``, a pipe)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.progress import Progress, TaskID

import storage
from tuner.cli._common import err
from tuner.cli._common import fmt as _fmt
from tuner.training import EpochStats
from tuner.worker import RunObserver


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogObserver(RunObserver):
    """One timestamped line per finished trial, and one when the study starts."""

    def study_started(
        self, name: str, finished: int, target: int, best: float | None = None
    ) -> None:
        err.print(
            f"{_stamp()} study {name}: {finished}/{target} trials finished, best {_fmt(best)}",
            highlight=False,
            soft_wrap=True,
        )

    def trial_finished(self, row: storage.TrialResultData) -> None:
        err.print(
            f"{_stamp()} {row.study_name} #{row.trial_number}: {row.state} ({row.stop_reason}) "
            f"value={_fmt(row.value)} initializer={row.initializer} lr={row.lr:.3g} "
            f"epochs={row.epochs_run} {row.duration_s:.1f}s",
            highlight=False,
            soft_wrap=True,
        )


class ProgressObserver(RunObserver):
    """Shows trials done/total, the running trial's epoch, and the best value so far."""

    def __init__(self, progress: Progress, max_epochs: int, direction: str) -> None:
        self.progress, self.max_epochs, self.direction = progress, max_epochs, direction
        self.best: float | None = None
        self.task: TaskID | None = None

    def _best_of(self, value: float | None) -> None:
        if value is None:
            return
        better = self.best is None or (
            value > self.best if self.direction == "maximize" else value < self.best
        )
        if better:
            self.best = value

    def study_started(
        self, name: str, finished: int, target: int, best: float | None = None
    ) -> None:
        self.best = best  # a resumed study's best so far, not only this run's
        self.task = self.progress.add_task(
            name, total=target, completed=finished, status="", best=_fmt(best)
        )

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        assert self.task is not None
        status = f"trial {number} · {params['initializer']} lr={params['lr']:.2g} · starting"
        self.progress.update(self.task, status=status)

    def epoch_finished(self, number: int, stats: EpochStats) -> None:
        assert self.task is not None
        status = f"trial {number} · epoch {stats.epoch}/{self.max_epochs}"
        self.progress.update(self.task, status=status)

    def trial_finished(self, row: storage.TrialResultData) -> None:
        assert self.task is not None
        self._best_of(row.value)
        status = f"trial {row.trial_number} · {row.stop_reason}"
        self.progress.update(self.task, advance=1, best=_fmt(self.best), status=status)

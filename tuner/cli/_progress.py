"""The progress bar of a study run here: an observer of the embedded workers."""

from __future__ import annotations

from typing import Any

from rich.progress import Progress, TaskID

import storage
from tuner.cli._common import fmt as _fmt
from tuner.training import EpochStats
from tuner.worker import RunObserver


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

    def study_started(self, name: str, finished: int, target: int) -> None:
        self.task = self.progress.add_task(
            name, total=target, completed=finished, status="", best=_fmt(None)
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

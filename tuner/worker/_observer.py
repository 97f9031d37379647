"""Progress hooks for a caller that shows a run (the CLI). The engine never prints."""

from __future__ import annotations

from typing import Any

import storage
from tuner.training import EpochStats


class RunObserver:
    """Override what you want to see; every hook is optional."""

    def study_started(
        self, name: str, finished: int, target: int, best: float | None = None
    ) -> None: ...
    def trial_started(self, number: int, params: dict[str, Any]) -> None: ...
    def epoch_finished(self, number: int, stats: EpochStats) -> None: ...
    def trial_finished(self, row: storage.TrialResultData) -> None: ...

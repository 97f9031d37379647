"""What a report shows, read once: the type the page, the figures and the dashboard share."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import storage
from tuner.report._figures import Curve
from tuner.variance import SeedVariance

#: Parameter importances by name, or None and a sentence saying why there are none.
Importances = tuple[dict[str, float] | None, str | None]


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, read once (:func:`collect_report`)."""

    study: str
    metric: str
    direction: str
    status: str
    target: int
    spec: dict[str, Any]
    created_at: datetime.datetime
    rows: list[storage.TrialResultData]  # best first
    live: dict[str, int]  # running/pending attempts
    profiles: list[storage.DepthProfile]
    curves: list[Curve]
    importances: Importances
    generated_at: datetime.datetime
    #: init seed vs data order vs residual: every trial (None), then each initializer
    seed_variance: list[tuple[str | None, SeedVariance]] = field(default_factory=list)
    trial_seed_variance: dict[int, SeedVariance] = field(default_factory=dict)  # by number
    signals: dict[int, storage.TrialSignalData] = field(default_factory=dict)  # by trial

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

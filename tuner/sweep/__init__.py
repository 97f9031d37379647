"""Sweeps in CI: run a study, judge it against gates and a baseline, write its reports."""

from tuner.sweep._reports import write_reports
from tuner.sweep._sweep import (
    EXIT_NOT_RUN,
    GateResult,
    Gates,
    SweepError,
    SweepOutcome,
    SweepReport,
    judge,
    make_gates,
    run_embedded,
    run_on_service,
    with_overrides,
)

__all__ = [
    "EXIT_NOT_RUN",
    "GateResult",
    "Gates",
    "SweepError",
    "SweepOutcome",
    "SweepReport",
    "judge",
    "make_gates",
    "run_embedded",
    "run_on_service",
    "with_overrides",
    "write_reports",
]

"""Sweeps in CI: run a study, judge it against gates and a baseline, write its reports.

Everything here also serves ``tuner sweep --url`` and needs only the client; the runner that
trains in this process is :mod:`tuner.sweep.embedded` (it loads the engine).
"""

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
    run_on_service,
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
    "run_on_service",
    "write_reports",
]

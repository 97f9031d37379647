"""A sweep run in this process (the engine): kept apart so judging a service's sweep, or
``tuner sweep --url``, loads no torch."""

from __future__ import annotations

import storage
from tuner.spec import StudySpec
from tuner.studies import read_leaderboard, run_study
from tuner.sweep._sweep import SweepOutcome
from tuner.worker import RunObserver


def run_embedded(
    spec: StudySpec,
    *,
    database_url: str,
    device: str = "auto",
    observer: RunObserver | None = None,
    top: int = 10,
) -> SweepOutcome:
    """Create or resume the study in this process (``budget.timeout_s`` is the limit)."""
    # The sweep's definition (its --timeout included) is what CI asked for: a resumed study
    # takes it, and the change is recorded on the Optuna study.
    summary = run_study(
        spec, database_url=database_url, device=device, observer=observer, accept_changes=True
    )
    db = storage.Database(database_url)
    try:
        board = read_leaderboard(db, spec.name, top)
        best, replicates = board.study.best, []
        if best is not None:
            with db.session() as session:
                replicates = storage.get_trial_replicates(session, spec.name, best.trial_number)
    finally:
        db.dispose()
    return SweepOutcome(
        board,
        timed_out=not summary.complete,
        finished=summary.finished,
        best_replicates=tuple(r.value for r in replicates),
    )

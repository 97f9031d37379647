"""Storage rows -> response schemas (the one place ORM objects are read for output)."""

import math
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

import storage
from api.schemas import Study, StudyBrief, StudyLinks, Trial, TrialCounts, TrialDetail
from tuner.variance import seed_variance


def trial(row: storage.TrialResult) -> Trial:
    return Trial.model_validate(row)


def _signal(data: storage.TrialSignalData | None) -> dict[str, Any] | None:
    if data is None:
        return None
    xi = data.xi_c
    return {**data.to_json(), "xi_c": None if xi is None or math.isinf(xi) else xi}


def trial_detail(session: Session, row: storage.TrialResult) -> TrialDetail:
    key = (session, row.study_name, row.trial_number)
    replicates = storage.get_trial_replicates(*key)
    split = seed_variance(replicates)
    return TrialDetail.model_validate(
        {
            **Trial.model_validate(row).model_dump(),
            "n_replicates": row.n_replicates,
            "value_std": row.value_std,
            "manifest": row.manifest_json,
            "diagnostics": [d.to_json() for d in storage.get_layer_diagnostics(*key)],
            "signal": _signal(storage.get_trial_signal(*key)),
            "replicates": [r.to_json() for r in replicates],
            "seed_variance": None if split is None else split.to_json(),
        }
    )


def links(request: Request, name: str) -> StudyLinks:
    def path(route: str) -> str:
        return str(request.app.url_path_for(route, name=name))

    return StudyLinks(
        self=path("get_study"),
        trials=path("list_trials"),
        best=path("get_best_trial"),
        summary=path("get_summary"),
        cancel=path("cancel_study"),
    )


def study_brief(request: Request, record: storage.StudyRecord) -> StudyBrief:
    return StudyBrief.model_validate(
        {
            "name": record.name,
            "status": record.status,
            "metric": record.metric,
            "direction": record.direction,
            "n_trials": record.n_trials,
            "created_at": record.created_at,
            "links": links(request, record.name),
        }
    )


def trial_counts(session: Session, name: str) -> TrialCounts:
    """Finished trials by state (results) and live ones (runs) of study ``name``."""
    counts = {
        state: storage.count_trial_results(session, name, state=state)
        for state in storage.TRIAL_STATES
    }
    runs = storage.count_runs_by_state(session, name)
    return TrialCounts(
        **counts, running=int(runs.get("running", 0)), pending=int(runs.get("pending", 0))
    )


def best_trial(session: Session, name: str) -> storage.TrialResult | None:
    """The best complete trial of study ``name`` so far (by its direction), or None."""
    rows = storage.list_trial_results(session, name, state="complete", limit=1)
    return rows[0] if rows and rows[0].value is not None else None


def study_detail(request: Request, session: Session, record: storage.StudyRecord) -> Study:
    brief = study_brief(request, record)
    best = best_trial(session, record.name)
    return Study(
        **dict(brief),
        counts=trial_counts(session, record.name),
        best=None if best is None else trial(best),
        spec=dict(record.spec_json),
        error=record.error,
    )

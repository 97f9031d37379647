"""Studies: submit, list, look at, cancel."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status

import storage
from api.deps import DatabaseDep, SessionDep, SettingsDep
from api.schemas import Message, Study, StudyPage, StudyStatus
from api.views import study_brief, study_detail
from tuner import studies
from tuner.spec import parse_spec

router = APIRouter(prefix="/studies", tags=["studies"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Message, "description": "no such study"}
}


def _missing(name: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"study {name!r} does not exist")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Study,
    responses={
        409: {"model": Message, "description": "a study with this name exists"},
        422: {"description": "the definition is invalid: each problem with its field path"},
    },
)
def create_study(
    request: Request,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    definition: Annotated[
        dict[str, Any],
        Body(
            description="a study definition (the YAML/JSON of `tuner run`, as JSON)",
            openapi_examples={
                "digits": {
                    "summary": "an MLP on scikit-learn's digits",
                    "value": {
                        "name": "digits-init",
                        "task": {"model": "mlp", "hidden": [64], "dataset": "digits"},
                        "search": {
                            "initializer": ["xavier_uniform", "kaiming_normal"],
                            "lr": {"low": 1e-3, "high": 1.0, "log": True},
                        },
                        "budget": {"n_trials": 20, "max_epochs": 10},
                    },
                }
            },
        ),
    ],
) -> Study:
    """Validate a study definition and queue it for the workers.

    Every problem is reported at once as a 422 with its field path; nothing is written
    unless the whole definition is valid.
    """
    # Paths in a definition from the network stay inside the configured data folder.
    spec = parse_spec(definition, base_dir=settings.data_dir, confine=True)
    studies.submit_study(db, spec)
    with db.session() as session:
        record = storage.get_study_record(session, spec.name)
        if record is None:  # cancelled and deleted in between: vanishingly rare
            raise _missing(spec.name)
        study = study_detail(request, session, record)
    response.headers["Location"] = study.links.self
    return study


@router.get("", response_model=StudyPage)
def list_studies(
    request: Request,
    session: SessionDep,
    status_: Annotated[StudyStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> StudyPage:
    """Studies, newest first."""
    records = storage.list_study_records(session, status=status_)
    page = records[offset : offset + limit]
    return StudyPage(
        items=[study_brief(request, r) for r in page],
        total=len(records),
        limit=limit,
        offset=offset,
    )


@router.get("/{name}", response_model=Study, responses=_NOT_FOUND)
def get_study(request: Request, session: SessionDep, name: str) -> Study:
    """A study: status, trial counts by state, best trial so far, definition."""
    record = storage.get_study_record(session, name)
    if record is None:
        raise _missing(name)
    return study_detail(request, session, record)


@router.post(
    "/{name}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Study,
    responses={
        **_NOT_FOUND,
        409: {"model": Message, "description": "the study has already finished"},
    },
)
def cancel_study(request: Request, db: DatabaseDep, name: str) -> Study:
    """Stop a study: no new trials start; running ones stop at their next epoch.

    Cancelling a cancelled study is a no-op; a completed or failed one is a 409.
    """
    studies.cancel_study(db, name)  # StudyStateError (409) if it has already finished
    with db.session() as session:
        record = storage.get_study_record(session, name)
        if record is None:
            raise _missing(name)
        return study_detail(request, session, record)

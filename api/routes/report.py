"""A study's report: one self-contained HTML page (plotly.js inlined; opens offline)."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.deps import DatabaseDep
from api.schemas import Message
from tuner.report import build_report

router = APIRouter(prefix="/studies", tags=["studies"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "the report page"},
    404: {"model": Message, "description": "no such study", "content": {"application/json": {}}},
}


@router.get("/{name}/report", response_class=HTMLResponse, responses=_RESPONSES)
async def get_report(db: DatabaseDep, name: str) -> HTMLResponse:
    """The study's report as one HTML page, the page `tuner report NAME -o FILE` writes.

    Leaderboard, best and median value per initializer, learning curves, activation and
    gradient std by depth at initialization, lr x weight decay, parameter importances.
    """
    # Reading every trial and drawing the figures takes CPU time: off the event loop.
    page = await run_in_threadpool(build_report, db, name)
    return HTMLResponse(page)

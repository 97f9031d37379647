"""Reports: one self-contained HTML page of a study, the same figures in the Optuna dashboard."""

from tuner.report._data import ReportData
from tuner.report._html import render
from tuner.report._report import (
    LEADERBOARD_ROWS,
    attach_figures,
    attach_to_dashboard,
    build_report,
    collect_report,
    make_figures,
    param_importances,
)

__all__ = [
    "LEADERBOARD_ROWS",
    "ReportData",
    "attach_figures",
    "attach_to_dashboard",
    "build_report",
    "collect_report",
    "make_figures",
    "param_importances",
    "render",
]

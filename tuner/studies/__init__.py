"""Studies: create, resume and cancel them, run one here, read results back, replay a trial."""

from tuner.studies._board import find_study, read_leaderboard, read_study
from tuner.studies._engine import RunSummary, run_study
from tuner.studies._replay import Replay, recorded_precision, replay_trial
from tuner.studies._service import cancel_study, check_task, ensure_study, submit_study

__all__ = [
    "Replay",
    "RunSummary",
    "cancel_study",
    "check_task",
    "ensure_study",
    "find_study",
    "read_leaderboard",
    "read_study",
    "recorded_precision",
    "replay_trial",
    "run_study",
    "submit_study",
]

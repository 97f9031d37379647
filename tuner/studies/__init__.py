"""Studies: create, resume and cancel them, run one here, read results back, replay a trial,
transfer one's best configuration to another width."""

from tuner.studies._board import find_study, read_leaderboard, read_study
from tuner.studies._engine import RunSummary, run_study
from tuner.studies._replay import Replay, recorded_precision, replay_trial
from tuner.studies._service import cancel_study, check_task, ensure_study, submit_study
from tuner.studies._transfer import scaled_widths, transfer_study, transferred_definition

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
    "scaled_widths",
    "submit_study",
    "transfer_study",
    "transferred_definition",
]

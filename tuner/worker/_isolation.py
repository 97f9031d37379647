"""A study that cannot run is that study's problem: it is marked failed, the worker goes on.

What counts: anything but an outage, an interrupt or a lost device raised while turning a
claimed run into a training job (parsing the stored definition, building the task or its
data, loading the Optuna study, asking for a trial) or while settling a lost run of the
study. Every trial of the study would meet it again, on any worker, so retrying would only
spread it.
"""

from __future__ import annotations

import contextlib
import logging

import optuna

import storage
from tuner.errors import DeviceLost
from tuner.worker._outage import is_outage

log = logging.getLogger("tuner.worker")


def study_cannot_run(exc: BaseException, *, storage_errors: bool = False) -> bool:
    """Whether ``exc`` is the study's problem: anything but an outage or an interrupt.

    A storage error that is no outage counts only where the study's own values met the
    database (``storage_errors``: running its job); a reaper's storage errors are its own.
    """
    if not isinstance(exc, Exception) or isinstance(exc, DeviceLost) or is_outage(exc):
        return False  # a lost device is the worker's problem, not the study's
    return storage_errors or not isinstance(exc, storage.StorageError)


def fail_study(db: storage.Database, name: str, exc: BaseException) -> None:
    """Mark study ``name`` failed with ``exc`` as the reason; end its unfinished runs and
    its Optuna trials left RUNNING, so nothing of it stays open."""
    reason = f"{type(exc).__name__}: {exc}"
    log.error("study %s cannot run; marked failed: %s", name, reason)
    with db.session() as session:
        storage.fail_study(session, name, reason)
    backend = db.optuna_storage()
    with contextlib.suppress(KeyError):  # its Optuna study may be what is gone
        study_id = backend.get_study_id_from_name(name)
        for trial in backend.get_all_trials(study_id, deepcopy=False):
            if trial.state == optuna.trial.TrialState.RUNNING:
                with contextlib.suppress(RuntimeError, ValueError):  # finished meanwhile
                    backend.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)

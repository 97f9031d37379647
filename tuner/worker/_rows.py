"""Results rows, and what a crash needs to record or retry a trial later.

Every finished trial gets one flat ``tuner_trial_results`` row. The row also rides
on the Optuna trial as a user attribute, and the trial's configuration is attached
when it starts, so whatever a crash interrupts can be recorded (and retried) later.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import distribution_to_json

import storage
from tuner.search import TrialParams
from tuner.training import TrialOutcome, trial_seeds

RESULT_ATTR = "tuner_result"  # the results row, so a row lost in a crash can be rebuilt
PARAMS_ATTR = "tuner"  # configuration, worker, device, attempt: set once when a trial starts


def worker_id() -> str:
    """host:pid:tag, unique per worker object even when a process runs several."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def result_row(study_name: str, outcome: TrialOutcome, worker: str) -> storage.TrialResultData:
    p = outcome.params
    return storage.TrialResultData(
        study_name=study_name,
        trial_number=outcome.number,
        state=outcome.state,
        stop_reason=outcome.stop_reason,
        initializer=p.summary,
        lr=p.lr,
        weight_decay=p.weight_decay,
        batch_size=p.batch_size,
        patience=p.patience,
        value=outcome.value,
        best_epoch=outcome.best_epoch,
        epochs_run=outcome.epochs_run,
        duration_s=outcome.duration_s,
        worker=worker,
        device=outcome.device,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        params_json={**p.to_json(), "seeds": outcome.seeds},
        error=outcome.error,
        manifest_json=outcome.manifest or None,
        n_replicates=max(1, len(outcome.replicates)),
        value_std=outcome.value_std,
        diagnostics=outcome.diagnostics,
        replicates=outcome.replicates,
        signal=outcome.signal,
    )


def failure_row(
    study_name: str, trial: optuna.trial.FrozenTrial, *, error: str
) -> storage.TrialResultData:
    """The row of a trial that ended without an outcome (interrupted, or its worker lost)."""
    meta: dict[str, Any] = trial.user_attrs[PARAMS_ATTR]
    params: dict[str, Any] = meta["params"]
    now = datetime.now(UTC)
    started = trial.datetime_start.astimezone(UTC) if trial.datetime_start else now
    return storage.TrialResultData(
        study_name=study_name,
        trial_number=trial.number,
        state="fail",
        stop_reason="error",
        initializer=TrialParams.from_json(params).summary,
        lr=params["lr"],
        weight_decay=params["weight_decay"],
        batch_size=params["batch_size"],
        patience=params["patience"],
        value=None,
        best_epoch=None,
        epochs_run=len(trial.intermediate_values),
        duration_s=max(0.0, (now - started).total_seconds()),
        worker=meta.get("worker"),
        device=meta.get("device"),
        started_at=started,
        finished_at=now,
        params_json={**params, "seeds": _seeds(meta, trial.number)},
        error=error,
    )


def _seeds(meta: dict[str, Any], number: int) -> dict[str, int]:
    root = meta["retry_of"] if meta.get("retry_of") is not None else number
    init_seed, data_seed = trial_seeds(int(meta.get("study_seed", 0)), root)
    return {"init": init_seed, "data": data_seed}


def retry_payload(trial: Any) -> dict[str, Any]:
    """What a retry needs to run the same configuration: Optuna's params and distributions."""
    return {
        "params": dict(trial.params),
        "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
    }


def frozen_trial(backend: Any, study_name: str, number: int) -> optuna.trial.FrozenTrial:
    study_id = backend.get_study_id_from_name(study_name)
    trial: optuna.trial.FrozenTrial = backend.get_trial(
        backend.get_trial_id_from_study_id_trial_number(study_id, number)
    )
    return trial


def dead_here(worker: str) -> bool:
    """Whether ``worker`` (host:pid:tag) is a process on this host that no longer exists."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

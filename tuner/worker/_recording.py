"""What a worker writes when a trial ends: its results row, Optuna's end of it, the run's.

:func:`record_outcome` after training, in one transaction (a crash leaves all of it or
none, and a run left ``running`` is the reaper's to settle); :func:`hand_back` for a trial
given back unfinished (an interrupt, a stopped worker): failed in Optuna, then the run ended
and its configuration queued again in one transaction. :class:`Recorder` decides which of
them a finished :class:`~tuner.worker._assembly.Job` gets, and tells the observer.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import optuna
from optuna.trial import FrozenTrial

import storage
from tuner.training import TrialOutcome
from tuner.worker._asking import tell_in_session, trial_ending
from tuner.worker._assembly import Job
from tuner.worker._leases import Leases
from tuner.worker._observer import RunObserver
from tuner.worker._reporting import AskedTrial, EpochReporter
from tuner.worker._rows import RESULT_ATTR, failure_row, frozen_trial, result_row
from tuner.worker._settle import queue_again

log = logging.getLogger("tuner.worker")


def record_outcome(
    db: storage.Database,
    claim: storage.Claim,
    study: optuna.Study,
    reporter: EpochReporter,
    outcome: TrialOutcome,
    *,
    worker: str,
    root: int,
    retry: bool,
    timeout_ends_study: bool,
) -> tuple[storage.TrialResultData, FrozenTrial] | None:
    """Record a trained trial; its row and finished Optuna trial, or None if it was taken over.

    ``retry``: the trial failed with retries left, so its configuration is queued again
    (seeds from trial ``root``). ``timeout_ends_study``: a timeout completes the study.
    """
    row = result_row(claim.study_name, outcome, worker)
    if retry:
        row = dataclasses.replace(row, error=f"{row.error} (retrying)")
    state = "retried" if retry else "cancelled" if outcome.stop_reason == "cancelled" else "done"
    trial = reporter.trial
    ending = trial_ending(study, trial, outcome, reporter)  # the sampler told, outside it
    # One transaction: the row, Optuna's end of the trial (with the epochs not yet written)
    # and the run's end commit together, or none of them (a crash leaves the run running;
    # the reaper then fails the trial and retries it). The study's lock comes last, held
    # for two statements, not the whole transaction (claims wait on it): finishers of one
    # study take turns there, and the last of them sees every run done (each statement
    # after the lock reads what committed before it). The run's row is locked before the
    # study's, as a reaper settling it locks them.
    with db.session() as session:
        storage.upsert_trial_result(session, row, lock=False)
        if not storage.finish_run(session, claim.run_id, state):
            session.rollback()
            return None  # declared lost meanwhile: the reaper records and retries it
        finished = tell_in_session(session, ending, reporter)
        if finished is None:
            session.rollback()
            log.warning("trial %s was taken over before it was recorded", trial.number)
            return None
        if retry:
            queue_again(session, claim.study_name, claim.attempt + 1, root, trial)
        storage.lock_study(session, claim.study_name)
        if outcome.stop_reason == "timeout" and timeout_ends_study:
            storage.set_study_status(session, claim.study_name, "completed")
        storage.complete_study_if_done(session, claim.study_name)
    return row, finished


def hand_back(
    db: storage.Database,
    claim: storage.Claim,
    study: optuna.Study,
    trial: AskedTrial,
    root: int,
    why: str,
) -> storage.TrialResultData:
    """Record this attempt as failed and queue the same configuration again (no retry used)."""
    backend = db.optuna_storage()
    row = failure_row(
        claim.study_name, frozen_trial(backend, study.study_name, trial.number), error=why
    )
    backend.set_trial_user_attr(trial.trial_id, RESULT_ATTR, row.to_json())
    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    with db.session() as session:
        if storage.finish_run(session, claim.run_id, "retried"):
            storage.upsert_trial_result(session, row)
            queue_again(session, claim.study_name, claim.attempt, root, trial)
    return row


class Recorder:
    """The ends of worker ``worker``'s trials; ``ran`` counts the trials it recorded.

    ``timeout_ends_study``: a trial's timeout completes its study (a service's study, not
    an embedded run's limit).
    """

    def __init__(
        self,
        db: storage.Database,
        worker: str,
        *,
        leases: Leases,
        observer: RunObserver,
        timeout_ends_study: bool,
    ) -> None:
        self.db, self.worker, self.leases, self.observer = db, worker, leases, observer
        self.timeout_ends_study = timeout_ends_study
        self.ran = 0
        self._lock = threading.Lock()

    def finish(self, job: Job, outcome: TrialOutcome) -> None:
        """Record a trained job, or hand it back if its worker was stopped under it."""
        claim, reporter = job.claim, job.reporter
        if job.lease["lost"]:
            reporter.flush()
            # A reaper that took the run records it and queues the retry. If none did (the
            # lease ran out here while the database was away, and no other worker reaped
            # it), the run is still ours: settle it as a reaper would, or the heartbeat
            # keeps it alive, untrained, forever.
            self.leases.reap_own(claim.run_id)
            return
        if outcome.stop_reason == "cancelled" and not self.leases.cancelled(claim.study_name):
            reporter.flush()
            why = "handed back: the worker was stopped"
            self.hand_back(claim, job.study, reporter.trial, job.root, why)
            return
        self.record(job, outcome)

    def record(self, job: Job, outcome: TrialOutcome) -> None:
        """Record the trained job's outcome (retried on an error with retries left)."""
        claim, max_retries = job.claim, job.ctx.spec.budget.max_retries
        recorded = record_outcome(
            self.db,
            claim,
            job.study,
            job.reporter,
            outcome,
            worker=self.worker,
            root=job.root,
            retry=outcome.stop_reason == "error" and claim.attempt < max_retries,
            timeout_ends_study=self.timeout_ends_study,
        )
        if recorded is None:
            return
        row, finished = recorded
        job.snapshot.record(finished)  # pruners and samplers see the trial we just finished
        with self._lock:
            self.ran += 1
        self.observer.trial_finished(row)

    def hand_back(
        self, claim: storage.Claim, study: optuna.Study, trial: AskedTrial, root: int, why: str
    ) -> None:
        """Give the trial back unfinished: recorded as failed, its configuration queued again."""
        self.observer.trial_finished(hand_back(self.db, claim, study, trial, root, why))

"""A claimed run made ready to train: its Optuna trial asked, its configuration and hook.

:meth:`Assembly.start` turns a :class:`storage.Claim` into a :class:`Job`: the trial asked
of Optuna (in memory, or define-by-run, or a retry's fixed parameters), the
:class:`TrainConfig` its parameters give, and the ``on_epoch`` hook that reports each epoch
and says when to stop (pruned, cancelled, lease lost, past the deadline). The deadlines
are on :func:`_clock`, the worker's one clock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import optuna
import torch

import storage
from tuner.errors import TunerError
from tuner.search import TrialParams, make_pruner, make_sampler, suggest
from tuner.spec import StudySpec, grid_space
from tuner.training import EpochHook, EpochStats, StopReason, TrainConfig, train_config
from tuner.worker._asking import ask_in_memory, asks_in_memory, retry_trial
from tuner.worker._claims import Claims, StudyContext
from tuner.worker._config import WorkerConfig
from tuner.worker._leases import Leases
from tuner.worker._observer import RunObserver
from tuner.worker._reporting import AskedTrial, EpochReporter, Snapshot
from tuner.worker._rows import PARAMS_ATTR

SAMPLING_SNAPSHOT_S = 1.0  # how stale a study the sampler may see (it skips a read per trial)


@dataclass
class Job:
    """A claimed run with its Optuna trial asked: what training and recording it need."""

    claim: storage.Claim
    ctx: StudyContext
    study: optuna.Study
    snapshot: Snapshot
    params: TrialParams
    root: int  # the first attempt's trial number: the seeds
    reporter: EpochReporter
    config: TrainConfig
    on_epoch: EpochHook
    lease: dict[str, bool]


class Assembly:
    """Jobs of worker ``worker``: asks Optuna, builds what training needs.

    ``stop``: set when the worker stops; a running trial then ends at its next epoch.
    """

    def __init__(
        self,
        db: storage.Database,
        worker: str,
        device: torch.device,
        config: WorkerConfig,
        *,
        claims: Claims,
        leases: Leases,
        observer: RunObserver,
        stop: threading.Event,
    ) -> None:
        self.db, self.worker, self.device, self.config = db, worker, device, config
        self.claims, self.leases, self.observer, self.stop = claims, leases, observer, stop
        self._local = threading.local()  # per slot: Study objects (not thread-safe to share)

    def start(self, claim: storage.Claim) -> Job:
        """Ask Optuna for the claim's trial; the hook and configuration to train it with."""
        claimed = time.monotonic()
        ctx = self.claims.context(claim.study_name, claim.spec_json)
        spec = ctx.spec
        study, snapshot, study_id = self._study(claim.study_name, spec)
        study.sampler = make_sampler(
            spec.sampler, seed=spec.seed, grid=grid_space(spec.search), stream=claim.seq
        )
        meta = {
            "worker": self.worker,
            "device": str(self.device),
            "attempt": claim.attempt,
            "retry_of": claim.retry_of,
            "study_seed": spec.seed,
        }
        # The run points at its Optuna trial from the transaction that creates the trial on.
        if claim.params_json is None and asks_in_memory(spec):
            snapshot.refresh(older_than=SAMPLING_SNAPSHOT_S)
            trial, params = ask_in_memory(
                self.db, study_id, study, snapshot, spec, meta, claim.run_id
            )
        else:  # Optuna's own ask (or a retry's fixed parameters), then define-by-run
            if claim.params_json:
                optuna_trial = retry_trial(
                    study, self.db, study_id, claim.params_json, claim.run_id
                )
            else:
                optuna_trial = study.ask()
                with self.db.session() as session:
                    storage.set_run_trial(session, claim.run_id, optuna_trial.number)
            params = suggest(optuna_trial, spec.search)
            optuna_trial.set_user_attr(PARAMS_ATTR, {**meta, "params": params.to_json()})
            trial = AskedTrial(
                optuna_trial.number,
                optuna_trial._trial_id,
                optuna_trial.params,
                optuna_trial.distributions,
            )
        root = claim.retry_of if claim.retry_of is not None else trial.number
        self.observer.trial_started(trial.number, params.to_json())
        deadline = self._deadline(claim, spec)
        lease = {"lost": False}

        reporter = EpochReporter(self.db, study, trial, snapshot, self.config.heartbeat_interval)

        def on_epoch(stats: EpochStats) -> StopReason | None:
            self.observer.epoch_finished(trial.number, stats)
            if reporter.report(stats.epoch, stats.metric(spec.metric)):
                return "pruned"
            if self.leases.cancelled(claim.study_name) or self.stop.is_set():
                return "cancelled"
            if self.leases.lost(claim.run_id, claimed):
                lease["lost"] = True
                return "cancelled"
            return "timeout" if _clock() > deadline else None

        config = train_config(params, ctx.task, spec)
        return Job(claim, ctx, study, snapshot, params, root, reporter, config, on_epoch, lease)

    def _study(self, name: str, spec: StudySpec) -> tuple[optuna.Study, Snapshot, int]:
        """This slot's Study for ``name``, the snapshot pruners and samplers read, its id.

        Kept across trials, so Optuna's trial cache stays warm.
        """
        studies: dict[str, tuple[optuna.Study, Snapshot, int]]
        studies = self._local.__dict__.setdefault("studies", {})
        if name not in studies:
            backend = self.db.optuna_storage()
            try:
                study = optuna.load_study(
                    study_name=name, storage=backend, pruner=make_pruner(spec.pruner)
                )
            except KeyError:  # optuna's "Record does not exist."
                message = f"study {name!r} is gone from Optuna's tables (deleted outside tuner?)"
                raise TunerError(message) from None
            studies[name] = (study, Snapshot(study), backend.get_study_id_from_name(name))
        return studies[name]

    def _deadline(self, claim: storage.Claim, spec: StudySpec) -> float:
        """When this trial must stop, on the worker's clock."""
        if self.config.deadline is not None:  # embedded run: this invocation's limit
            return self.config.deadline
        if spec.budget.timeout_s is None:
            return float("inf")
        left = claim.created_at.timestamp() + spec.budget.timeout_s - time.time()
        return _clock() + left  # service: the study's limit, counted from its creation

    def past_deadline(self) -> bool:
        """Whether this worker's own limit (embedded runs) has passed."""
        return self.config.deadline is not None and _clock() > self.config.deadline


def _clock() -> float:
    """The worker's clock for deadlines (monotonic); one place, so tests can move it."""
    return time.monotonic()

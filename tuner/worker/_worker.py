"""Workers: claim trials of any study with budget left, train them, record every outcome.

A worker process holds one or more slots (threads) on one device. Each slot loops:
settle lost runs, claim a run (atomically, against the study budget), ask Optuna for
the trial, train it, then record it. A heartbeat thread keeps the worker's runs alive
and learns which studies were cancelled. A run whose heartbeat goes stale (its worker
was killed or cut off) is failed by whichever worker notices first, recorded, and
retried with the same parameters up to ``budget.max_retries``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import optuna
import torch

import storage
from tuner.population import (
    Member,
    PopulationConfig,
    execute_population,
    largest_batch,
    population_size,
)
from tuner.search import TrialParams, make_pruner, make_sampler, suggest
from tuner.spec import StudySpec, grid_space, parse_spec
from tuner.tasks import DataSplit, Task, build_task
from tuner.training import (
    EpochHook,
    EpochStats,
    StopReason,
    TrainConfig,
    TrialOutcome,
    execute_trial,
    intra_op_threads,
    resolve_device,
)
from tuner.worker._asking import ask_in_memory, asks_in_memory, retry_trial
from tuner.worker._observer import RunObserver
from tuner.worker._recording import hand_back, record_outcome
from tuner.worker._reporting import AskedTrial, EpochReporter, Snapshot
from tuner.worker._rows import PARAMS_ATTR, dead_here, worker_id
from tuner.worker._settle import settle_lost_run

log = logging.getLogger("tuner.worker")
SAMPLING_SNAPSHOT_S = 1.0  # how stale a study the sampler may see (it skips a read per trial)


@dataclass(frozen=True)
class WorkerConfig:
    device: str = "auto"
    slots: int = 1
    heartbeat_interval: float = 10.0
    grace: float = 60.0  # a run with no heartbeat for this long is lost
    poll_interval: float = 2.0  # idle wait between claims
    studies: Sequence[str] | None = None  # only these studies; None: any
    exit_when_idle: bool = False  # stop when nothing is claimable or running
    deadline: float | None = None  # time.monotonic() limit of this worker (embedded runs)
    population: int | None = None  # trials trained as one stack: None/0 auto, 1 off, K
    fast: bool | None = None  # populations in bf16/TF32 with fused optimizers; None: CUDA only
    threads: int | None = None  # intra-op threads per slot; None: on CPU, the cores shared out


def slot_threads(device: torch.device, slots: int, threads: int | None) -> int | None:
    """Intra-op threads each slot should use; None: leave torch's setting alone.

    On a CPU, slots share the process's threads (torch's default: one per core): two slots
    on two cores run one thread each. Small models' ops (the MLPs populations stack) scale
    badly across threads, so trials in parallel beat threads in parallel there.
    """
    if threads is not None:
        return threads
    if device.type != "cpu" or slots == 1:
        return None
    return max(1, torch.get_num_threads() // slots)


@dataclass
class _StudyContext:
    spec: StudySpec
    task: Task
    data: DataSplit
    population: int | None = None  # trials a slot claims at once; None: not decided yet


@dataclass
class _Job:
    """A claimed run with its Optuna trial asked: what training and recording it need."""

    claim: storage.Claim
    ctx: _StudyContext
    study: optuna.Study
    snapshot: Snapshot
    params: TrialParams
    root: int  # the first attempt's trial number: the seeds
    reporter: EpochReporter
    config: TrainConfig
    on_epoch: EpochHook
    lease: dict[str, bool]


class Worker:
    def __init__(
        self,
        db: storage.Database,
        config: WorkerConfig,
        *,
        observer: RunObserver | None = None,
        tasks: dict[str, Task] | None = None,
    ) -> None:
        self.db, self.config = db, config
        self.observer = observer or RunObserver()
        self.name = worker_id()
        self.device = resolve_device(config.device)
        self.ran = 0
        self.timed_out = False
        self._stop = threading.Event()  # no new claims; running trials are handed back
        self._done = threading.Event()  # the heartbeat thread ends
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._cancelled: set[str] = set()
        self._beat_at = time.monotonic()
        self._last_reap = -1e9
        self._tasks = dict(tasks or {})
        self._contexts: dict[str, _StudyContext] = {}
        self._local = threading.local()  # per slot: Study objects (not thread-safe to share)

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop (signal-safe): running trials are handed back at an epoch end."""
        self._stop.set()

    def run(self) -> int:
        """Work until stopped (or idle, with ``exit_when_idle``); returns trials recorded."""
        with self.db.session() as session:
            storage.register_worker(
                session,
                name=self.name,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=str(self.device),
                slots=self.config.slots,
            )
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        threads = slot_threads(self.device, self.config.slots, self.config.threads)
        try:
            with intra_op_threads(threads):  # before the slots start
                self._run_slots()
        finally:
            self._stop.set()
            self._done.set()
            beat.join()
            with self.db.session() as session:
                storage.stop_worker(session, self.name)
        return self.ran

    def _run_slots(self) -> None:
        if self.config.slots == 1:
            self._slot_loop()
            return
        slots = [
            threading.Thread(target=self._slot_loop, name=f"slot-{i}", daemon=True)
            for i in range(self.config.slots)
        ]
        for thread in slots:
            thread.start()
        for thread in slots:
            thread.join()

    def _heartbeat_loop(self) -> None:
        while not self._done.wait(self.config.heartbeat_interval):
            started = time.monotonic()  # a run claimed after this may be missing from `owned`
            try:
                with self.db.session() as session:
                    owned, cancelled = storage.heartbeat(session, self.name)
            except storage.StorageError as exc:  # keep training; the lease decides
                log.warning("heartbeat failed: %s", exc)
                continue
            with self._lock:
                self._owned, self._cancelled, self._beat_at = owned, cancelled, started

    def _lease_lost(self, run_id: int, claimed: float) -> bool:
        """True when a heartbeat begun after the claim no longer lists the run (and the
        database confirms it), or when no heartbeat got through for a whole grace period."""
        with self._lock:
            if time.monotonic() - self._beat_at > self.config.grace:
                return True
            suspect = self._beat_at > claimed and run_id not in self._owned
        if not suspect:
            return False
        try:
            with self.db.session() as session:
                return not storage.owns_run(session, run_id, self.name)
        except storage.StorageError:
            return False  # cannot tell now; the grace rule above decides in time

    # -- the loop ----------------------------------------------------------------------------

    def _slot_loop(self) -> None:
        while not self._stop.is_set():
            if self.config.deadline is not None and _clock() > self.config.deadline:
                self.timed_out = True
                return
            try:
                self._reap()
                with self.db.session() as session:
                    claim = storage.claim_run(
                        session,
                        worker=self.name,
                        device=str(self.device),
                        studies=self.config.studies,
                    )
            except storage.StorageError as exc:  # the database is away: wait, try again
                log.warning("claim failed: %s", exc)
                self._stop.wait(self.config.poll_interval)
                continue
            if claim is None:
                if self.config.exit_when_idle and self._idle():
                    return
                self._stop.wait(self.config.poll_interval)
                continue
            claims = self._claim_more(claim)
            if len(claims) > 1:
                self._run_population(claims)
            else:
                self._run(claim)

    def _idle(self) -> bool:
        studies = self.config.studies
        with self.db.session() as session:
            names = list(studies) if studies is not None else []
            counts = [storage.count_runs_by_state(session, n) for n in names]
        return all(c.get("running", 0) == 0 and c.get("pending", 0) == 0 for c in counts)

    def _context(self, name: str, spec_json: dict[str, object]) -> _StudyContext:
        if name not in self._contexts:
            spec = parse_spec(spec_json)
            task = self._tasks.get(name) or build_task(spec.task)
            self._contexts[name] = _StudyContext(spec, task, task.data.to(self.device))
        return self._contexts[name]

    # -- populations -------------------------------------------------------------------------

    def _population(self, ctx: _StudyContext) -> int:
        """Trials of this study to claim at once: 1 unless they can train as one stack."""
        if ctx.population is None:
            spec, wanted = ctx.spec, self.config.population
            if wanted == 1 or spec.replicates > 1 or not asks_in_memory(spec):
                ctx.population = 1  # lockstep replicates, or samplers that ask one by one
            else:
                batch = largest_batch(spec.search.batch_size)
                config = PopulationConfig(size=wanted or None)
                ctx.population = population_size(ctx.task, batch, self.device, config)
        return ctx.population

    def _claim_more(self, claim: storage.Claim) -> list[storage.Claim]:
        """The claim, plus as many more runs of its study as one population takes."""
        k = self._population(self._context(claim.study_name, claim.spec_json))
        claims = [claim]
        if k > 1:
            try:
                with self.db.session() as session:  # each claim checks the budget on its own
                    for _ in range(k - 1):
                        more = storage.claim_run(
                            session,
                            worker=self.name,
                            device=str(self.device),
                            studies=[claim.study_name],
                        )
                        if more is None:
                            break
                        claims.append(more)
            except storage.StorageError as exc:  # rolled back: train the one claim alone
                log.warning("claiming a population failed: %s", exc)
                claims = [claim]
        return claims

    def _run_population(self, claims: list[storage.Claim]) -> None:
        """Ask a trial per claim, train them as populations, record each as it ends."""
        jobs = [self._start(claim) for claim in claims]
        ctx, finished = jobs[0].ctx, [False] * len(jobs)
        members = [
            Member(job.reporter.trial.number, job.params, job.config, job.on_epoch, job.root)
            for job in jobs
        ]

        def record(i: int, outcome: TrialOutcome) -> None:
            finished[i] = True
            self._finish(jobs[i], outcome)

        try:
            execute_population(
                members,
                task=ctx.task,
                data=ctx.data,
                study_seed=ctx.spec.seed,
                device=self.device,
                config=PopulationConfig(size=len(jobs), fast=self.config.fast),
                on_outcome=record,
            )
        except BaseException:  # an interrupt: hand back what is still training
            for job, done in zip(jobs, finished, strict=True):
                if not done:
                    job.reporter.flush()
                    self._hand_back(
                        job.claim, job.study, job.reporter.trial, job.root, "interrupted"
                    )
            raise

    # -- one trial ---------------------------------------------------------------------------

    def _run(self, claim: storage.Claim) -> None:
        job = self._start(claim)
        try:
            outcome = execute_trial(
                number=job.reporter.trial.number,
                params=job.params,
                task=job.ctx.task,
                data=job.ctx.data,
                config=job.config,
                study_seed=job.ctx.spec.seed,
                device=self.device,
                on_epoch=job.on_epoch,
                seed_number=job.root,
                replicates=job.ctx.spec.replicates,
            )
        except BaseException:  # an interrupt: hand the trial back, then let it propagate
            job.reporter.flush()
            self._hand_back(claim, job.study, job.reporter.trial, job.root, "interrupted")
            raise
        self._finish(job, outcome)

    def _start(self, claim: storage.Claim) -> _Job:
        """Ask Optuna for the claim's trial; the hook and configuration to train it with."""
        claimed = time.monotonic()
        ctx = self._context(claim.study_name, claim.spec_json)
        spec = ctx.spec
        study, snapshot, study_id = self._study(claim.study_name, spec)
        study.sampler = make_sampler(
            spec.sampler, seed=spec.seed, grid=grid_space(spec.search), stream=claim.seq
        )
        meta = {
            "worker": self.name,
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
            if claim.study_name in self._cancelled or self._stop.is_set():
                return "cancelled"
            if self._lease_lost(claim.run_id, claimed):
                lease["lost"] = True
                return "cancelled"
            return "timeout" if _clock() > deadline else None

        config = TrainConfig(
            lr=params.lr,
            weight_decay=params.weight_decay,
            batch_size=params.batch_size,
            patience=params.patience,
            max_epochs=spec.budget.max_epochs,
            optimizer=ctx.task.optimizer,
            momentum=ctx.task.momentum,
            min_delta=spec.budget.min_delta,
            metric=spec.metric,
            direction=spec.resolved_direction,
        )
        return _Job(claim, ctx, study, snapshot, params, root, reporter, config, on_epoch, lease)

    def _finish(self, job: _Job, outcome: TrialOutcome) -> None:
        claim, reporter = job.claim, job.reporter
        if job.lease["lost"]:
            reporter.flush()
            return  # the reaper that took the run records it and schedules the retry
        if outcome.stop_reason == "cancelled" and claim.study_name not in self._cancelled:
            reporter.flush()
            why = "handed back: the worker was stopped"
            self._hand_back(claim, job.study, reporter.trial, job.root, why)
            return
        self._record(claim, job.ctx.spec, job.study, job.snapshot, reporter, outcome, job.root)

    def _study(self, name: str, spec: StudySpec) -> tuple[optuna.Study, Snapshot, int]:
        """This slot's Study for ``name``, the snapshot pruners and samplers read, its id.

        Kept across trials, so Optuna's trial cache stays warm.
        """
        studies: dict[str, tuple[optuna.Study, Snapshot, int]]
        studies = self._local.__dict__.setdefault("studies", {})
        if name not in studies:
            backend = self.db.optuna_storage()
            study = optuna.load_study(
                study_name=name, storage=backend, pruner=make_pruner(spec.pruner)
            )
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

    def _record(
        self,
        claim: storage.Claim,
        spec: StudySpec,
        study: optuna.Study,
        snapshot: Snapshot,
        reporter: EpochReporter,
        outcome: TrialOutcome,
        root: int,
    ) -> None:
        recorded = record_outcome(
            self.db,
            claim,
            study,
            reporter,
            outcome,
            worker=self.name,
            root=root,
            retry=outcome.stop_reason == "error" and claim.attempt < spec.budget.max_retries,
            timeout_ends_study=self.config.deadline is None,  # a service's study, not a run's
        )
        if recorded is None:
            return
        row, finished = recorded
        snapshot.record(finished)  # pruners and samplers see the trial we just finished
        self.ran += 1
        self.observer.trial_finished(row)

    def _hand_back(
        self, claim: storage.Claim, study: optuna.Study, trial: AskedTrial, root: int, why: str
    ) -> None:
        self.observer.trial_finished(hand_back(self.db, claim, study, trial, root, why))

    # -- lost runs ---------------------------------------------------------------------------

    def _reap(self) -> None:
        with self._lock:
            if time.monotonic() - self._last_reap < self.config.heartbeat_interval:
                return
            self._last_reap = time.monotonic()
        stale_before = datetime.now(UTC) - timedelta(seconds=self.config.grace)
        with self.db.session() as session:
            dead = {w for w in storage.running_workers(session) if dead_here(w)}
            lost = storage.reap_lost_runs(session, stale_before=stale_before, dead_workers=dead)
        for run in lost:
            settle_lost_run(self.db, run, grace=self.config.grace)


def _clock() -> float:
    """The worker's clock for deadlines (monotonic); one place, so tests can move it."""
    return time.monotonic()

"""Workers: claim trials of any study with budget left, train them, record every outcome.

A worker process holds one or more slots (threads) on one device. Each slot loops:
settle lost runs, claim a run (atomically, against the study budget), ask Optuna for
the trial, train it, then record it. A heartbeat thread keeps the worker's runs alive
and learns which studies were cancelled. A run whose heartbeat goes stale (its worker
was killed or cut off) is failed by whichever worker notices first, recorded, and
retried with the same parameters up to ``budget.max_retries``.

The parts, wired here: :class:`~tuner.worker._leases.Leases` (the heartbeat, lost leases,
reaping), :class:`~tuner.worker._claims.Claims` (claims, population sizes, study contexts),
:class:`~tuner.worker._assembly.Assembly` (a claim's trial asked and made ready to train),
the :class:`~tuner.worker._executor.Executor` (the training), and
:class:`~tuner.worker._recording.Recorder` (each trial's end).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time

import storage
from tuner.errors import DeviceLost
from tuner.population import Member, PopulationConfig, resolve_fast
from tuner.tasks import Task
from tuner.training import (
    TrialOutcome,
    deterministic_kernels,
    fp32_precision,
    intra_op_threads,
    precision_for,
    resolve_device,
    slot_stream,
)
from tuner.worker import _assembly
from tuner.worker._assembly import Assembly, Job
from tuner.worker._claims import Claims
from tuner.worker._config import WorkerConfig, require_connections, slot_threads
from tuner.worker._executor import Executor
from tuner.worker._isolation import fail_study, study_cannot_run
from tuner.worker._leases import Leases
from tuner.worker._observer import RunObserver
from tuner.worker._outage import is_outage, while_unavailable
from tuner.worker._recording import Recorder
from tuner.worker._rows import worker_id

__all__ = ["Executor", "Worker", "WorkerConfig", "slot_threads"]

log = logging.getLogger("tuner.worker")


class Worker:
    def __init__(
        self,
        db: storage.Database,
        config: WorkerConfig,
        *,
        observer: RunObserver | None = None,
        tasks: dict[str, Task] | None = None,
        executor: Executor | None = None,
    ) -> None:
        require_connections(db, config.slots)
        self.db, self.config = db, config
        self.observer = observer or RunObserver()
        self.executor = executor or Executor()
        self.name = worker_id()
        self.device = resolve_device(config.device)
        self.timed_out = False
        self.lost: DeviceLost | None = None  # the device failed: the worker stopped using it
        self._stop = threading.Event()  # no new claims; running trials are handed back
        self._leases = Leases(db, self.name, interval=config.heartbeat_interval, grace=config.grace)
        self._claims = Claims(db, self.name, self.device, config, tasks)
        self._assembly = Assembly(
            db,
            self.name,
            self.device,
            config,
            claims=self._claims,
            leases=self._leases,
            observer=self.observer,
            stop=self._stop,
        )
        self._recorder = Recorder(
            db,
            self.name,
            leases=self._leases,
            observer=self.observer,
            timeout_ends_study=config.deadline is None,  # a service's study, not a run's
        )

    @property
    def ran(self) -> int:
        """Trials this worker recorded."""
        return self._recorder.ran

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop (signal-safe): running trials are handed back at an epoch end."""
        self._stop.set()

    def run(self) -> int:
        """Work until stopped (or idle, with ``exit_when_idle``); returns trials recorded.

        Raises :class:`DeviceLost` (after handing back every run it held) when the device
        failed under a trial: the process should exit, a new one gets a fresh device context.
        """
        # Optuna checks its schema on a connection of its own: before the slots and the
        # heartbeat hold theirs, so the process stays within its connections.
        self.db.optuna_storage()
        with self.db.session() as session:
            storage.register_worker(
                session,
                name=self.name,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=str(self.device),
                slots=self.config.slots,
            )
        self._leases.start()
        threads = slot_threads(self.device, self.config.slots, self.config.threads)
        fast = resolve_fast(self.device, self.config.fast)
        try:
            # Process-wide, so set before the slots start and held until they end (never per
            # slot); restored afterwards. Every trial's manifest records them as in effect.
            with (
                intra_op_threads(threads),
                fp32_precision(precision_for(fast)),
                deterministic_kernels(self.device, on=not fast),
            ):
                self._run_slots()
        finally:
            self._stop.set()
            self._release_at_exit()
            self._leases.close()
            try:
                with self.db.session() as session:
                    storage.stop_worker(session, self.name)
            except storage.StorageError as exc:  # its heartbeat goes stale: it reads as gone
                log.warning("could not mark the worker stopped: %s", exc)
        if self.lost is not None:
            raise self.lost
        return self.ran

    def _release_at_exit(self, attempts: int = 5) -> None:
        """Hand back what an interrupt left held (claimed, not trained or not recorded).

        A few tries: an interrupt can leave the database busy for a moment (SQLite's lock
        of a write it cut short). Past them, the reaper settles the runs after the grace.
        """
        for attempt in range(attempts):
            try:
                self._leases.release()
                return
            except Exception as exc:
                if not (isinstance(exc, storage.StorageError) or is_outage(exc)):
                    raise
                log.warning("handing back runs at exit failed (try %d): %s", attempt + 1, exc)
                time.sleep(0.2 * 2**attempt)

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
        try:
            for thread in slots:
                thread.join()
        except BaseException:  # Ctrl-C or SIGTERM in the main thread: slots hand back first
            self._stop.set()
            for thread in slots:
                thread.join()
            raise

    # -- the loop ----------------------------------------------------------------------------

    def _slot_loop(self) -> None:
        with slot_stream(self.device):  # its own CUDA stream: slots on one GPU overlap
            self._slot_work()

    def _slot_work(self) -> None:
        while not self._stop.is_set():
            if self.config.deadline is not None and _assembly._clock() > self.config.deadline:
                self.timed_out = True
                return
            try:
                self._leases.reap()
                claim = self._claims.claim()
            except Exception as exc:  # the database is away: wait, try again
                if not (isinstance(exc, storage.StorageError) or is_outage(exc)):
                    raise
                log.warning("claim failed: %s", exc)
                self._stop.wait(self.config.poll_interval)
                continue
            if claim is None:
                idle = functools.partial(self._claims.idle)
                if self.config.exit_when_idle and while_unavailable(
                    idle, stop=self._stop, what="checking for work"
                ):
                    return
                self._stop.wait(self.config.poll_interval)
                continue
            held = [claim.run_id]
            try:
                claims = self._claims.claim_more(claim)
                held = [c.run_id for c in claims]
                if len(claims) > 1:
                    self._run_population(claims)
                else:
                    self._run(claim)
            except DeviceLost as exc:  # nothing more runs on this device: hand back, stop
                self._device_lost(exc, held)
                return
            except Exception as exc:
                if is_outage(exc):  # mid-job: its runs go back once the database is up
                    log.warning("the database went away during a trial: %s", exc)
                    release = functools.partial(self._leases.release, held)
                    while_unavailable(release, stop=self._stop, what="handing back")
                    continue
                if not study_cannot_run(exc, storage_errors=True):
                    raise
                failed = functools.partial(fail_study, self.db, claim.study_name, exc)
                while_unavailable(failed, stop=self._stop, what="marking a study failed")
                self._claims.forget(claim.study_name)

    def _device_lost(self, exc: DeviceLost, held: list[int]) -> None:
        """Stop the worker: its device failed under runs ``held`` (handed back, no retry
        spent: the trials were not at fault). The other slots hand theirs back as they stop."""
        log.error("%s (handed back run(s) %s)", exc, held)
        self.lost = self.lost or exc
        self._stop.set()
        release = functools.partial(self._leases.release, held, why=f"handed back: {exc}")
        while_unavailable(release, stop=threading.Event(), what="handing back")

    def _run_population(self, claims: list[storage.Claim]) -> None:
        """Ask a trial per claim, train them as populations, record each as it ends."""
        jobs = [self._assembly.start(claim) for claim in claims]
        ctx, finished = jobs[0].ctx, [False] * len(jobs)
        members = [
            Member(job.reporter.trial.number, job.params, job.config, job.on_epoch, job.root)
            for job in jobs
        ]

        def record(i: int, outcome: TrialOutcome) -> None:
            finished[i] = True
            self._claims.after_population(ctx, jobs[i].claim.study_name, outcome)
            self._finish(jobs[i], outcome)

        assert ctx.data is not None, "populations train only tasks of the built-in loop"
        try:
            self.executor.population(
                members,
                task=ctx.task,
                data=ctx.data,
                study_seed=ctx.spec.seed,
                device=self.device,
                config=PopulationConfig(
                    size=len(jobs), fast=self.config.fast, compile=self.config.compile
                ),
                on_outcome=record,
            )
        except BaseException as exc:  # an interrupt, a lost device: hand back what trains
            why = f"handed back: {exc}" if isinstance(exc, DeviceLost) else "interrupted"
            for job, done in zip(jobs, finished, strict=True):
                if not done:
                    job.reporter.flush()
                    self._recorder.hand_back(
                        job.claim, job.study, job.reporter.trial, job.root, why
                    )
            raise

    def _run(self, claim: storage.Claim) -> None:
        job = self._assembly.start(claim)
        try:
            outcome = self.executor.trial(
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
        except BaseException as exc:  # an interrupt, a lost device: hand back, propagate
            why = f"handed back: {exc}" if isinstance(exc, DeviceLost) else "interrupted"
            job.reporter.flush()
            self._recorder.hand_back(claim, job.study, job.reporter.trial, job.root, why)
            raise
        self._finish(job, outcome)

    def _finish(self, job: Job, outcome: TrialOutcome) -> None:
        """Record a trained job; while the database is away, wait for it (the result is kept)."""
        record = functools.partial(self._recorder.finish, job, outcome)
        while_unavailable(record, stop=self._stop, what=f"recording trial {job.claim.run_id}")

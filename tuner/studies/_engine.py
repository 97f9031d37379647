"""The embedded engine: create or resume a study, then run it in this process.

``tuner run`` is one worker restricted to one study that stops when the study is done,
so a study runs the same way embedded or on a fleet of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import storage
from tuner.errors import SpecError, SpecIssue
from tuner.spec import StudySpec
from tuner.studies._service import check_task, ensure_study
from tuner.tasks import build_task
from tuner.training import resolve_device
from tuner.worker import RunObserver, Worker, WorkerConfig, _assembly, worker_database


@dataclass(frozen=True)
class RunSummary:
    study_name: str
    database_url: str
    target: int  # finished trials the study should end with
    finished: int  # finished trials it has now
    ran: int  # trials this call recorded
    timed_out: bool

    @property
    def complete(self) -> bool:
        return self.finished >= self.target


def _done(db: storage.Database, name: str) -> int:
    with db.session() as session:
        return storage.count_runs_by_state(session, name).get("done", 0)


def _best(db: storage.Database, name: str) -> float | None:
    with db.session() as session:
        best = storage.list_trial_results(session, name, state="complete", limit=1)
    return best[0].value if best else None


def run_study(
    spec: StudySpec,
    *,
    database_url: str | None = None,
    n_trials: int | None = None,
    device: str | None = None,
    observer: RunObserver | None = None,
    heartbeat_interval: float = 10.0,
    grace: float = 60.0,
    population: int | None = None,
    fast: bool | None = None,
    compile: bool = False,
    slots: int = 1,
    threads: int | None = None,
    accept_changes: bool = False,
) -> RunSummary:
    """Run the study in this process until it has ``n_trials`` finished trials.

    ``population`` trials train together as one stacked model (None/0: as many as fit, 1:
    one at a time); ``fast`` trains them in bf16 with whole-stack optimizer steps and every
    trial's fp32 on CUDA in TF32 (None: on CUDA; exact: full fp32, cuDNN's included);
    ``compile`` runs a population's stacked step through ``torch.compile``.
    ``slots`` trials (or populations) train at once, each slot on ``threads`` intra-op threads
    (None: on a CPU, the process's threads shared out among the slots). A resume whose
    definition changed is refused unless ``accept_changes`` (see :func:`ensure_study`).
    """
    target = n_trials if n_trials is not None else spec.budget.n_trials
    if target < 1:
        raise SpecError([SpecIssue(("budget", "n_trials"), f"must be >= 1, got {target}")])
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    dev = resolve_device(device)
    task = build_task(spec.task)  # data and model problems surface before anything is written
    check_task(spec, task)
    observer = observer or RunObserver()
    db = worker_database(storage.resolve_database_url(database_url), slots)
    try:
        db.upgrade()
        ensure_study(db, spec, target, accept_changes=accept_changes)
        observer.study_started(spec.name, _done(db, spec.name), target, _best(db, spec.name))
        timeout = spec.budget.timeout_s
        config = WorkerConfig(
            device=str(dev),
            slots=slots,
            heartbeat_interval=heartbeat_interval,
            grace=grace,
            poll_interval=min(1.0, heartbeat_interval),
            studies=(spec.name,),
            exit_when_idle=True,
            deadline=None if timeout is None else _assembly._clock() + timeout,
            population=population,
            fast=fast,
            compile=compile,
            threads=threads,
        )
        worker = Worker(db, config, observer=observer, tasks={spec.name: task})
        ran = worker.run()
        finished = _done(db, spec.name)
        return RunSummary(spec.name, db.url, target, finished, ran, worker.timed_out)
    finally:
        db.dispose()

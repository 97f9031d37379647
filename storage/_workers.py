"""The worker registry: who is running, on what device, and which trials they hold."""

from __future__ import annotations

import dataclasses
import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage._errors import translate_errors
from storage._models import TrialRun, WorkerRecord, utcnow


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    pid: int
    device: str
    slots: int
    started_at: datetime.datetime
    heartbeat_at: datetime.datetime
    current: list[tuple[str, int | None]]  # (study, trial number) of the runs it holds


@translate_errors
def register_worker(
    session: Session, *, name: str, host: str, pid: int, device: str, slots: int
) -> None:
    now = utcnow()
    session.add(
        WorkerRecord(
            name=name,
            host=host,
            pid=pid,
            device=device,
            slots=slots,
            started_at=now,
            heartbeat_at=now,
        )
    )
    session.flush()


@translate_errors
def stop_worker(session: Session, name: str) -> None:
    session.execute(
        sa.update(WorkerRecord).where(WorkerRecord.name == name).values(stopped_at=utcnow())
    )


@translate_errors
def list_workers(session: Session, *, alive_within_s: float) -> list[WorkerInfo]:
    """Workers that heartbeated within ``alive_within_s`` and have not stopped, oldest first."""
    since = utcnow() - datetime.timedelta(seconds=alive_within_s)
    workers = session.scalars(
        sa.select(WorkerRecord)
        .where(WorkerRecord.heartbeat_at >= since, WorkerRecord.stopped_at.is_(None))
        .order_by(WorkerRecord.started_at, WorkerRecord.id)
    ).all()
    held: dict[str, list[tuple[str, int | None]]] = {}
    if workers:
        runs = session.execute(
            sa.select(TrialRun.worker, TrialRun.study_name, TrialRun.trial_number)
            .where(TrialRun.state == "running", TrialRun.worker.in_([w.name for w in workers]))
            .order_by(TrialRun.id)
        )
        for worker, study, number in runs.all():
            held.setdefault(str(worker), []).append((study, number))
    return [
        WorkerInfo(
            w.name,
            w.host,
            w.pid,
            w.device,
            w.slots,
            w.started_at,
            w.heartbeat_at,
            held.get(w.name, []),
        )
        for w in workers
    ]

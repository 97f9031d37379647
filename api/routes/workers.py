"""Workers: who is alive, on which device, running what."""

from fastapi import APIRouter

import storage
from api.deps import SessionDep, SettingsDep
from api.schemas import CurrentTrial, Worker, WorkerList

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", response_model=WorkerList)
def list_workers(session: SessionDep, settings: SettingsDep) -> WorkerList:
    """Workers with a heartbeat in the last ``stale_after_s`` seconds, and their trials."""
    infos = storage.list_workers(session, alive_within_s=settings.stale_after_s)
    return WorkerList(
        items=[
            Worker(
                name=info.name,
                host=info.host,
                pid=info.pid,
                device=info.device,
                slots=info.slots,
                started_at=info.started_at,
                heartbeat_at=info.heartbeat_at,
                current=[CurrentTrial(study=s, trial_number=n) for s, n in info.current],
            )
            for info in infos
        ],
        stale_after_s=settings.stale_after_s,
    )

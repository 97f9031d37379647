"""Workers on a Ray cluster: N actors, each the ordinary worker loop on the device Ray gave it.

Ray places, restarts and scales the actors; the database's leases keep every trial
accounted for. Ray itself (the ``ray`` extra) is imported only when a pool starts.
"""

from tuner.scale._actor import IDLE, STOPPED, WorkerReport
from tuner.scale._placement import Placement, assigned_device, worker_device
from tuner.scale._pool import PoolSummary, RayPool, RayWorkers, StopRequest, gpu_share
from tuner.scale._ray import RAY_EXTRA, import_ray

__all__ = [
    "IDLE",
    "RAY_EXTRA",
    "STOPPED",
    "Placement",
    "PoolSummary",
    "RayPool",
    "RayWorkers",
    "StopRequest",
    "WorkerReport",
    "assigned_device",
    "gpu_share",
    "import_ray",
    "worker_device",
]

"""Where Ray put a worker actor, and the device that follows from it.

Ray gives an actor with ``num_gpus > 0`` its GPU(s) and sets ``CUDA_VISIBLE_DEVICES`` to
them before the actor starts, so the first visible GPU is the assigned one: the worker
trains on ``cuda:0``. Nothing here sets ``CUDA_VISIBLE_DEVICES``; an actor without a GPU
trains on the CPU. Pure functions, so the choice is tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tuner.errors import TunerError


@dataclass(frozen=True)
class Placement:
    """What one actor reports of itself, on the node where it runs."""

    index: int  # the actor's number in its pool, 0-based
    node_id: str  # Ray's node id
    node_ip: str
    pid: int  # the actor's process: the ``host:pid:tag`` worker names of its runs
    gpu_ids: tuple[str, ...]  # ray.get_gpu_ids(): the physical GPUs Ray assigned
    visible_devices: str | None  # CUDA_VISIBLE_DEVICES as Ray set it (None: unset)
    assigned_device: str  # the device Ray's assignment gives: cuda:N, else cpu
    device: str  # the device the worker trains on (assigned_device unless told cpu)
    restarted: bool  # this actor is a restart of one that died


def assigned_device(gpu_ids: Sequence[str], visible_devices: str | None) -> str:
    """The torch device of the first GPU Ray assigned: its position among the visible GPUs
    (``cuda:0`` as Ray sets ``CUDA_VISIBLE_DEVICES``), its own index when Ray was told not
    to set the variable, ``cpu`` without a GPU."""
    if not gpu_ids:
        return "cpu"
    first = str(gpu_ids[0])
    if visible_devices is None:  # RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: all visible
        return f"cuda:{first}"
    visible = [d.strip() for d in visible_devices.split(",") if d.strip()]
    if first not in visible:
        raise TunerError(
            f"Ray assigned GPU {first}, but CUDA_VISIBLE_DEVICES={visible_devices!r} hides it"
        )
    return f"cuda:{visible.index(first)}"


def worker_device(requested: str, assigned: str) -> str:
    """The device a worker on Ray trains on: ``auto`` is Ray's assignment; ``cpu`` keeps it
    on the CPU whatever Ray reserved. Any other device is Ray's to choose, not the user's."""
    if requested == "auto":
        return assigned
    if requested == "cpu":
        return "cpu"
    raise TunerError(
        f"--device {requested} with --ray: Ray assigns each worker its GPU (the worker uses "
        "cuda:0, the first it sees); give --gpus-per-worker, or --device cpu"
    )

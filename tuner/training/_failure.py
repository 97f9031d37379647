"""What a failed trial leaves: its outcome fields, and the device memory it held given back.

Three kinds of failure, told apart by :func:`is_device_lost` and :func:`is_out_of_memory`:

* the device is lost (``torch.AcceleratorError``, or a ``RuntimeError`` that reads
  "CUDA error: ..."): a CUDA context that raised one is poisoned, so nothing is recorded
  against the trial and the caching allocator is not touched; :class:`DeviceLost` is raised
  for the worker to hand the trial back and stop using the device. The check does not look
  at the device type: on a CPU such an error cannot happen for real.
* out of memory: the trial's failure, recorded as "out of memory: ...", and the memory its
  tensors held is released *before* the allocator's cache is emptied (:func:`release`).
* anything else: the trial's failure, recorded as ``Type: message``.
"""

from __future__ import annotations

import gc
import logging
import traceback
from collections.abc import Sequence
from typing import Any

import torch

from tuner.errors import DeviceLost
from tuner.training._devices import on_device

log = logging.getLogger("tuner.trial")


def is_device_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the device's context can no longer be used."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return False
    if isinstance(exc, torch.AcceleratorError):
        return True
    return isinstance(exc, RuntimeError) and str(exc).startswith("CUDA error")


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def describe_error(exc: BaseException) -> str:
    if is_out_of_memory(exc):
        return f"out of memory: {exc}".splitlines()[0]
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def device_lost(exc: BaseException, device: torch.device | str) -> DeviceLost:
    """The :class:`DeviceLost` to raise for ``exc`` on ``device``."""
    first = (str(exc).splitlines() or [""])[0]
    return DeviceLost(str(device), f"{type(exc).__name__}: {first}")


def survive_out_of_memory(exc: Exception, device: torch.device) -> None:
    """For a handler that carries on after running out of memory: :class:`DeviceLost` for a
    lost device, ``exc`` again for anything but an OOM, else the failed tensors released
    (:func:`release`); follow it with :func:`free_memory` once the handler has left."""
    if is_device_lost(exc):
        raise device_lost(exc, device) from exc
    if not is_out_of_memory(exc):
        raise exc
    release(exc)


def uses_cuda_allocator(device: torch.device) -> bool:
    """Whether failures on ``device`` leave memory in CUDA's caching allocator."""
    return device.type == "cuda"


def release(exc: BaseException) -> None:
    """Drop what keeps a failed computation's tensors alive: the frames of ``exc``'s
    traceback (and of the exceptions it chains), their locals cleared."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)  # skips frames still running
            current.__traceback__ = None
        current = current.__cause__ or current.__context__


def free_memory(device: torch.device) -> None:
    """Give the caching allocator's free blocks back (CUDA only); never raises: a failing
    ``empty_cache`` must not end the slot. Call it after :func:`release`."""
    if not uses_cuda_allocator(device):
        return
    gc.collect()  # tensors held in reference cycles (frames that caught an exception)
    try:
        with on_device(device):  # this GPU's cache, not GPU 0's
            torch.cuda.empty_cache()
    except Exception as exc:
        log.warning("could not empty the CUDA cache on %s: %r", device, exc)


def failed_fields(
    exc: BaseException, device: torch.device, *, history: Sequence[Any] = ()
) -> dict[str, Any]:
    """The outcome fields of a trial that raised ``exc``: failed with the error described,
    and the memory it held freed. :class:`DeviceLost` instead when the device is lost."""
    if is_device_lost(exc):
        raise device_lost(exc, device) from exc
    error = describe_error(exc)
    release(exc)
    free_memory(device)
    return {
        "state": "fail",
        "stop_reason": "error",
        "value": None,
        "best_epoch": None,
        "epochs_run": len(history),
        "history": list(history),
        "error": error,
    }

"""Devices: which one a worker trains on, checked before anything is claimed, and a context
that makes CUDA calls without a device argument act on that one (not on GPU 0)."""

from __future__ import annotations

import contextlib

import torch

from tuner.errors import TunerError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: str | None = None) -> torch.device:
    """The device a worker trains on, checked before anything is claimed: ``cpu``,
    ``cuda``/``cuda:N`` (N below the GPUs present), ``mps``, or ``auto``/None (the current
    CUDA device, else MPS, else the CPU). Always with its index for CUDA (``cuda:0``)."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise TunerError(
            f"unknown device {name!r}: {exc}; use cpu, cuda[:N], mps or auto"
        ) from None
    if device.type == "cuda":
        count = _gpu_count()
        if count == 0:
            raise TunerError(f"device {name!r} asked for, but CUDA is not available here")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            present = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise TunerError(
                f"device {name!r} asked for, but this host has {count} GPU(s) ({present})"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise TunerError(f"device {name!r} asked for, but MPS is not available here")
        return device
    if device.type != "cpu":
        raise TunerError(f"device {name!r} is not one a worker trains on: cpu, cuda[:N], mps")
    return device


def on_device(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """For a CUDA device, ``torch.cuda.device(device)``: calls that act on the *current* GPU
    (``is_bf16_supported``, ``pin_memory``, ``empty_cache``) then act on this one instead of
    opening a context on GPU 0. Elsewhere (or with no CUDA to act on) nothing."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def slot_stream(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """A CUDA stream of the calling slot's own, current on its thread while entered: slots
    sharing a GPU overlap their kernels instead of queueing on the default stream, and one
    slot's end-of-epoch sync waits only for its own work. Elsewhere nothing."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.stream(torch.cuda.Stream(device))
    return contextlib.nullcontext()


def settle_stream(device: torch.device) -> None:
    """Wait for the calling thread's stream on ``device``: what it wrote (a study's data,
    shared by every slot) is then complete for work queued on any other stream."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.current_stream(device).synchronize()

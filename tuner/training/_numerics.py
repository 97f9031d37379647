"""The process's fp32 precision on CUDA: cuBLAS matmuls and cuDNN convolutions and RNNs.

Owned here, through torch's ``fp32_precision`` API only: once anything in a process has
set one of those, reading the legacy ``allow_tf32`` flags raises, so nothing in the tuner
reads or writes them. ``"ieee"`` is full fp32; ``"tf32"`` lets Ampere-and-later GPUs
multiply fp32 through TensorFloat-32 (a 10-bit mantissa). Torch's own defaults differ per
backend (cuBLAS ieee, cuDNN tf32), so a run that is meant to be exact sets all three.

The flags are process-global: they are set once per process (a worker, before its slots
start; a replay, before it trains), never per slot thread, and held while that runs
(:func:`fp32_precision`). Every trial's manifest records what was in effect
(:func:`precision_in_effect`), read back through the same API when the trial trains.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import torch

from tuner.errors import TunerError

Precision = Literal["ieee", "tf32"]
#: The flags, as a manifest names them: what each one governs on CUDA.
FLAGS = ("matmul", "cudnn_conv", "cudnn_rnn")
EXACT: dict[str, str] = dict.fromkeys(FLAGS, "ieee")
FAST: dict[str, str] = dict.fromkeys(FLAGS, "tf32")

_LOCK = threading.Lock()
_held: dict[str, Any] = {"count": 0, "precisions": None, "saved": None}


def _backend(flag: str) -> Any:
    """The torch object whose ``fp32_precision`` is ``flag``."""
    cudnn: Any = torch.backends.cudnn  # its conv and rnn are set up at import, untyped
    return {
        "matmul": torch.backends.cuda.matmul,
        "cudnn_conv": cudnn.conv,
        "cudnn_rnn": cudnn.rnn,
    }[flag]


def _read(flag: str) -> str:
    # torch resolves "none" through the parents (cudnn, then the generic flag); "none" left
    # means nothing was set at any level, and no backend uses TF32 then: ieee.
    value = str(_backend(flag).fp32_precision)
    return "ieee" if value == "none" else value


def _raw() -> dict[str, str]:
    return {flag: str(_backend(flag).fp32_precision) for flag in FLAGS}


def _write(precisions: Mapping[str, str]) -> None:
    for flag, value in precisions.items():
        _backend(flag).fp32_precision = value


def precision_in_effect() -> dict[str, str]:
    """Each flag's precision now, as CUDA would compute with it: ``{"matmul": "ieee", ...}``."""
    return {flag: _read(flag) for flag in FLAGS}


def precision_for(fast: bool) -> dict[str, str]:
    """The flags of a mode: TF32 everywhere when fast, full fp32 everywhere when exact."""
    return dict(FAST if fast else EXACT)


def held_precision() -> dict[str, str] | None:
    """What :func:`fp32_precision` holds the process at now; None when nobody holds it."""
    with _LOCK:
        held = _held["precisions"]
        return None if held is None else dict(held)


@contextlib.contextmanager
def fp32_precision(precisions: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Hold the process at ``precisions`` (a mapping of :data:`FLAGS`) until the block ends;
    yields what is then in effect.

    Process-wide, so enter it before starting the threads that train. Holders of the same
    precisions share it (nested, or concurrently in one process); asking for different
    ones while it is held raises :class:`TunerError` instead of changing the others' math
    under them. When the last holder leaves, the flags are restored to what they were before
    the first one came (left as they were, not reset to torch's defaults).
    """
    wanted = {flag: str(precisions[flag]) for flag in FLAGS if flag in precisions}
    unknown = set(precisions) - set(FLAGS)
    bad = {v for v in wanted.values() if v not in ("ieee", "tf32")}
    if unknown or bad:
        raise TunerError(
            f"fp32 precision: unknown flags {sorted(unknown)} or values {sorted(bad)}; "
            f"flags are {', '.join(FLAGS)}, values ieee or tf32"
        )
    with _LOCK:
        held = _held["precisions"]
        if held is not None and held != wanted:
            raise TunerError(
                f"this process already trains at fp32 precision {held}; it cannot also "
                f"train at {wanted} (the flags are process-wide: use another process)"
            )
        if held is None:
            _held["saved"] = _raw()
            _write(wanted)
            _held["precisions"] = wanted
        _held["count"] += 1
    try:
        yield precision_in_effect()
    finally:
        with _LOCK:
            _held["count"] -= 1
            if _held["count"] == 0:
                _write(_held["saved"])
                _held["precisions"] = _held["saved"] = None


#: cuBLAS's reproducible workspace (NVIDIA's documented setting for deterministic GEMMs);
#: read when cuBLAS starts, so it is set before any trial multiplies on the GPU.
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic_kernels(device: torch.device, on: bool) -> Iterator[None]:
    """On CUDA with ``on`` (exact mode, or a replay of a trial recorded so): torch's
    deterministic algorithms (a warning, not an error, where an op has none), cuDNN
    deterministic with its autotuner off, and ``CUBLAS_WORKSPACE_CONFIG`` if the user set
    none; restored afterwards (the environment variable stays: cuBLAS has read it).
    Elsewhere nothing: the CPU kernels the loop uses are deterministic already.

    Process-wide like :func:`fp32_precision`: enter it before the slots start."""
    if device.type != "cuda" or not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    cudnn: Any = torch.backends.cudnn
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]

"""Device failures forced on a CPU: what a CUDA run would raise, and the cleanup it triggers.

On a CPU no ``torch.cuda.OutOfMemoryError`` or ``torch.AcceleratorError`` can happen for
real, so the tests raise them from the real functions (patched), and let the cleanup believe
it runs on CUDA (:func:`tuner.training._failure.uses_cuda_allocator`), recording each
``torch.cuda.empty_cache`` call and whether the failed step's tensor was still alive then.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch


def oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def device_assert() -> torch.AcceleratorError:
    return torch.AcceleratorError("CUDA error: device-side assert triggered")


class Cleanup:
    """``empty_cache`` calls, and for each whether the tracked tensors were all dead."""

    def __init__(self) -> None:
        self.tracked: list[weakref.ref[torch.Tensor]] = []
        self.calls: list[bool] = []  # per call: every tracked tensor released before it

    def empty_cache(self) -> None:
        self.calls.append(all(ref() is None for ref in self.tracked))


def failing(
    error: Callable[[], BaseException],
    cleanup: Cleanup,
    *,
    times: int | None = None,
    original: Callable[..., Any] | None = None,
) -> Callable[..., Any]:
    """A stand-in that allocates a tensor (what the failing step holds when it raises), then
    raises ``error()``; after ``times`` calls (None: never) it calls ``original`` instead."""
    calls = [0]

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if times is None or calls[0] <= times:
            held = torch.ones(1024)
            cleanup.tracked.append(weakref.ref(held))
            raise error()
        assert original is not None
        return original(*args, **kwargs)

    return fake

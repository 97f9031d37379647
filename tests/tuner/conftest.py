"""Fixtures of the engine's tests."""

from __future__ import annotations

import pytest
import torch

from tests.tuner.device_faults import Cleanup
from tuner.training import _failure


@pytest.fixture
def cleanup(monkeypatch: pytest.MonkeyPatch) -> Cleanup:
    """Failures are cleaned up as on CUDA; ``torch.cuda.empty_cache`` recorded, not run."""
    seen = Cleanup()
    monkeypatch.setattr(_failure, "uses_cuda_allocator", lambda device: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", seen.empty_cache)
    return seen

"""Devices are checked before a worker registers or claims anything."""

from __future__ import annotations

import pytest
import torch

import storage
from tuner.errors import TunerError
from tuner.training import resolve_device
from tuner.worker import Worker, WorkerConfig


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int, *, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("count", "mps", "name", "expected"),
    [
        (0, False, "auto", "cpu"),
        (0, True, "auto", "mps"),  # auto: cuda, then mps, then cpu
        (2, True, "auto", "cuda:0"),  # recorded with its index
        (2, False, "cuda", "cuda:0"),
        (2, False, "cuda:1", "cuda:1"),
        (0, False, "cpu", "cpu"),
        (0, True, "mps", "mps"),
    ],
)
def test_devices_resolve_as_documented(
    monkeypatch: pytest.MonkeyPatch, count: int, mps: bool, name: str, expected: str
) -> None:
    _gpus(monkeypatch, count, mps=mps)
    assert str(resolve_device(name)) == expected


@pytest.mark.parametrize(
    ("count", "name", "said"),
    [
        (1, "cuda:7", r"has 1 GPU\(s\)"),
        (0, "cuda", "CUDA is not available"),
        (0, "mps", "MPS is not available"),
        (0, "tpu", "unknown device"),
        (0, "meta", "not one a worker trains on"),
        (0, "cuda:x", "unknown device"),
    ],
)
def test_devices_that_cannot_train_are_refused(
    monkeypatch: pytest.MonkeyPatch, count: int, name: str, said: str
) -> None:
    _gpus(monkeypatch, count)
    with pytest.raises(TunerError, match=said):
        resolve_device(name)


def test_a_worker_on_a_missing_device_registers_and_claims_nothing(
    monkeypatch: pytest.MonkeyPatch, database: storage.Database
) -> None:
    _gpus(monkeypatch, 0)
    with pytest.raises(TunerError, match="MPS is not available"):
        Worker(database, WorkerConfig(device="mps"))
    with database.session() as session:
        assert storage.list_workers(session, alive_within_s=3600) == []

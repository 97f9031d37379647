"""Devices are checked before a worker registers or claims anything."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import storage
from tuner.errors import TunerError
from tuner.population import bf16_matmuls
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.training import on_device, resolve_device, settle_stream, slot_stream
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


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cuda:0", "cuda:0"), ("cuda", "cuda:0"), ("auto", "cuda:0"), ("cpu", "cpu")],
)
def test_a_one_gpu_host_records_its_gpu_with_the_index(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    _gpus(monkeypatch, 1)
    assert str(resolve_device(name)) == expected


@pytest.mark.parametrize("name", ["cuda:1", "cuda:7"])
def test_a_one_gpu_host_refuses_another_index_in_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _gpus(monkeypatch, 1)
    with pytest.raises(TunerError) as caught:
        resolve_device(name)
    said = str(caught.value)
    assert said == f"device '{name}' asked for, but this host has 1 GPU(s) (cuda:0)"
    assert "\n" not in said


def test_a_study_on_a_missing_gpu_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _gpus(monkeypatch, 1)
    path = tmp_path / "never.db"
    spec = parse_spec(
        {
            "name": "nogpu",
            "task": {"model": "mlp", "hidden": [8], "dataset": "digits"},
            "search": {"initializer": ["xavier_uniform"], "lr": [0.1], "batch_size": [32]},
            "budget": {"n_trials": 1, "max_epochs": 1},
        }
    )
    with pytest.raises(TunerError, match=r"'cuda:7' asked for, but this host has 1 GPU"):
        run_study(spec, database_url=f"sqlite:///{path}", device="cuda:7")
    assert not path.exists()


def test_a_worker_on_a_missing_gpu_registers_nothing(
    monkeypatch: pytest.MonkeyPatch, database: storage.Database
) -> None:
    _gpus(monkeypatch, 1)
    with pytest.raises(TunerError, match="has 1 GPU"):
        Worker(database, WorkerConfig(device="cuda:7"))
    with database.session() as session:
        assert storage.list_workers(session, alive_within_s=3600) == []


class _CurrentGpu:
    """Stands in for torch.cuda.device: tracks which GPU calls would act on."""

    def __init__(self) -> None:
        self.index = 0

    def __call__(self, device: torch.device) -> contextlib.AbstractContextManager[None]:
        @contextlib.contextmanager
        def switch() -> Iterator[None]:
            saved, self.index = self.index, torch.device(device).index or 0
            try:
                yield
            finally:
                self.index = saved

        return switch()


def test_bf16_is_asked_of_the_trials_gpu_not_the_current_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _gpus(monkeypatch, 2)
    current, asked = _CurrentGpu(), list[int]()
    monkeypatch.setattr(torch.cuda, "device", current)

    def supported(*_: object, **__: object) -> bool:
        asked.append(current.index)
        return True

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert bf16_matmuls(torch.device("cuda", 1))
    assert asked == [1]
    assert current.index == 0  # restored afterwards
    with on_device(torch.device("cpu")):
        assert current.index == 0


class _Streams:
    """torch.cuda's stream calls, recorded: which stream each thread made current, and
    which it waited for."""

    def __init__(self) -> None:
        self.made: list[tuple[str, int]] = []
        self.current: dict[str, int] = {}
        self.waited: list[int] = []

    def stream_class(self, device: torch.device) -> int:
        self.made.append((str(device), len(self.made)))
        return len(self.made) - 1

    @contextlib.contextmanager
    def stream(self, stream: int) -> Iterator[None]:
        name = threading.current_thread().name
        self.current[name] = stream
        yield

    def current_stream(self, device: torch.device) -> _Streams:
        self.waiting = self.current[threading.current_thread().name]
        return self

    def synchronize(self) -> None:
        self.waited.append(self.waiting)


def test_each_slot_on_a_gpu_gets_a_stream_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 1)
    streams = _Streams()
    monkeypatch.setattr(torch.cuda, "Stream", streams.stream_class)
    monkeypatch.setattr(torch.cuda, "stream", streams.stream)
    monkeypatch.setattr(torch.cuda, "current_stream", streams.current_stream)

    def slot() -> None:
        with slot_stream(torch.device("cuda", 0)):
            settle_stream(torch.device("cuda", 0))  # as a slot does after moving data

    threads = [threading.Thread(target=slot, name=f"slot-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(streams.made) == [("cuda:0", 0), ("cuda:0", 1)]
    assert sorted(streams.current.values()) == [0, 1]  # one each, not the default stream
    assert sorted(streams.waited) == [0, 1]  # each waited for its own stream's work
    with slot_stream(torch.device("cpu")):
        settle_stream(torch.device("cpu"))
    assert len(streams.made) == 2  # nothing on the CPU

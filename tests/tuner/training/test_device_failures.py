"""A trial's device failures, forced on a CPU at each stage of real training.

Out of memory is the trial's failure ("out of memory: ..."), with the failed tensors released
before ``torch.cuda.empty_cache``; a CUDA error (``torch.AcceleratorError``) is no trial's
failure: it raises :class:`DeviceLost`, and the poisoned allocator is not touched.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from tests.tuner.device_faults import Cleanup, device_assert, failing, oom
from tuner.errors import DeviceLost
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.tasks import DataSplit, Task, build_task
from tuner.training import TrainConfig, TrialOutcome, execute_trial

CPU = torch.device("cpu")


def _task() -> Task:
    spec = parse_spec({"name": "t", "task": {"hidden": [8], "dataset": "synthetic"}})
    return build_task(spec.task)


def _trial(task: Task, initializer: str = "xavier_uniform") -> TrialOutcome:
    params = TrialParams(initializer, initializer, 0.1, 0.0, 32, 2)
    config = TrainConfig(lr=0.1, weight_decay=0.0, batch_size=32, patience=2, max_epochs=2)
    return execute_trial(
        number=0,
        params=params,
        task=task,
        data=task.data,
        config=config,
        study_seed=3,
        device=CPU,
    )


def _step(monkeypatch: pytest.MonkeyPatch, fake: Callable[..., object]) -> None:
    monkeypatch.setattr(torch.optim.SGD, "step", fake)


def _data_move(monkeypatch: pytest.MonkeyPatch, fake: Callable[..., object]) -> None:
    monkeypatch.setattr(DataSplit, "to", fake)


def _lsuv_forward(monkeypatch: pytest.MonkeyPatch, fake: Callable[..., object]) -> None:
    monkeypatch.setattr(nn.Linear, "forward", fake)  # the first forward is LSUV's


STAGES = {"step": _step, "data move": _data_move, "lsuv": _lsuv_forward}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_out_of_memory_at_each_stage_is_the_trials_failure_and_its_memory_is_freed(
    stage: str, monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task = _task()  # built (and its data loaded) before the failure is injected
    STAGES[stage](monkeypatch, failing(oom, cleanup))
    outcome = _trial(task, initializer="lsuv")
    assert (outcome.state, outcome.stop_reason, outcome.value) == ("fail", "error", None)
    assert outcome.error is not None and outcome.error.startswith("out of memory: CUDA out of")
    # emptied once, after the tensor the failing call held was released
    assert cleanup.tracked and cleanup.calls == [True]


def test_a_trial_that_did_not_fail_empties_no_cache(cleanup: Cleanup) -> None:
    outcome = _trial(_task())
    assert outcome.state == "complete" and cleanup.calls == []


def test_an_empty_cache_that_fails_does_not_end_the_trial(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    def broken() -> None:
        raise RuntimeError("CUDA driver shutting down")

    monkeypatch.setattr(torch.cuda, "empty_cache", broken)
    _step(monkeypatch, failing(oom, cleanup))
    outcome = _trial(_task())
    assert outcome.error is not None and outcome.error.startswith("out of memory")


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize(
    "error",
    [device_assert, lambda: RuntimeError("CUDA error: an illegal memory access was encountered")],
    ids=["AcceleratorError", "RuntimeError"],
)
def test_a_cuda_error_at_each_stage_loses_the_device_not_the_trial(
    stage: str,
    error: Callable[[], BaseException],
    monkeypatch: pytest.MonkeyPatch,
    cleanup: Cleanup,
) -> None:
    task = _task()
    STAGES[stage](monkeypatch, failing(error, cleanup))
    with pytest.raises(DeviceLost, match="device cpu lost") as lost:
        _trial(task, initializer="lsuv")
    assert "illegal memory access" in lost.value.reason or "device-side assert" in lost.value.reason
    assert cleanup.calls == []  # the poisoned context's allocator is left alone


def _own_loop(fail: Callable[[], BaseException]) -> Task:
    def train(ctx: object) -> None:
        report = ctx.report  # type: ignore[attr-defined]
        report(1, val_accuracy=0.5, val_loss=1.0, train_loss=1.0)
        raise fail()

    return Task("own", "relu", None, None, "sgd", 0.9, train=train)


def test_a_function_trial_shares_the_failure_handling(cleanup: Cleanup) -> None:
    outcome = _trial(_own_loop(oom))
    assert (outcome.state, outcome.stop_reason, outcome.value) == ("fail", "error", None)
    assert outcome.error is not None and outcome.error.startswith("out of memory")
    assert outcome.epochs_run == 1 and len(outcome.history) == 1  # what it reported is kept
    assert cleanup.calls == [True]
    with pytest.raises(DeviceLost):
        _trial(_own_loop(device_assert))
    assert cleanup.calls == [True]  # nothing more

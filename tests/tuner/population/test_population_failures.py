"""A population's device failures, forced on a CPU: building the stack, moving the data, a
step, mem_get_info. Out of memory re-runs the members in smaller stacks; a CUDA error
raises DeviceLost."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.tuner.device_faults import Cleanup, device_assert, failing, oom
from tuner.errors import DeviceLost
from tuner.population import (
    Member,
    PopulationConfig,
    StackedOptimizer,
    _fused,
    execute_population,
    population_size,
)
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.tasks import DataSplit, Task, build_task
from tuner.training import EpochHook, TrainConfig, TrialOutcome

CPU = torch.device("cpu")


def _task() -> Task:
    spec = parse_spec({"name": "p", "task": {"hidden": [8], "dataset": "synthetic"}})
    return build_task(spec.task)


def _members(k: int) -> list[Member]:
    members = []
    for n in range(k):
        params = TrialParams("xavier_uniform", "xavier_uniform", 0.05 * (n + 1), 0.0, 32, 2)
        config = TrainConfig(lr=params.lr, weight_decay=0.0, batch_size=32, patience=2,
                             max_epochs=2, optimizer="sgd", momentum=0.9)  # fmt: skip
        members.append(Member(n, params, config))
    return members


def _train(task: Task, k: int) -> list[TrialOutcome]:
    assert task.data is not None
    return execute_population(
        _members(k), task=task, data=task.data, study_seed=5, device=CPU,
        config=PopulationConfig(size=k, fast=False),
    )  # fmt: skip


def _facts(outcome: TrialOutcome) -> dict[str, object]:
    facts = outcome.manifest["population"]
    assert isinstance(facts, dict)
    return facts


def test_a_stack_that_does_not_fit_trains_its_members_in_halves(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task = _task()
    builds: list[int] = []
    real = _fused.StackedMLP

    def stack(models: list[torch.nn.Module]) -> object:
        builds.append(len(models))
        if len(models) > 2:  # four do not fit, two do
            raise oom()
        return real(models)

    monkeypatch.setattr(_fused, "StackedMLP", stack)
    outcomes = _train(task, 4)
    assert builds == [4, 2, 2]
    assert [o.number for o in outcomes] == [0, 1, 2, 3]
    assert all(o.state == "complete" and o.error is None for o in outcomes)
    assert [(_facts(o)["size"], _facts(o)["out_of_memory"]) for o in outcomes] == [(2, [4])] * 4
    assert cleanup.calls == [True]


def test_a_step_out_of_memory_reruns_the_members_smaller_from_their_first_epoch(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task = _task()
    original = StackedOptimizer.step
    monkeypatch.setattr(StackedOptimizer, "step", failing(oom, cleanup, times=1, original=original))
    outcomes = _train(task, 4)
    assert all(o.state == "complete" for o in outcomes)
    assert all([s.epoch for s in o.history] == [1, 2] for o in outcomes)  # from the start
    assert {_facts(o)["size"] for o in outcomes} == {2}
    assert cleanup.calls == [True]  # the tensor the failed step held was gone by then
    monkeypatch.setattr(StackedOptimizer, "step", original)
    alone = _train(task, 2)  # the same members, never out of memory: the same numbers
    assert [o.value for o in outcomes[:2]] == pytest.approx([o.value for o in alone], rel=1e-5)


def test_a_rerun_does_not_tell_the_hooks_again_what_they_heard(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task = _task()
    original = _fused.StackedMLP.evaluate
    calls = [0]

    def evaluate(self: object, *args: object) -> object:  # the second epoch's evaluation fails
        calls[0] += 1
        if calls[0] == 2:
            raise oom()
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_fused.StackedMLP, "evaluate", evaluate)
    heard: list[tuple[int, int]] = []

    def hook(n: int) -> EpochHook:
        return lambda stats: heard.append((n, stats.epoch))  # type: ignore[func-returns-value]

    members = [replace(m, on_epoch=hook(m.number)) for m in _members(4)]
    assert task.data is not None
    outcomes = execute_population(
        members, task=task, data=task.data, study_seed=5, device=CPU,
        config=PopulationConfig(size=4, fast=False),
    )  # fmt: skip
    assert all([s.epoch for s in o.history] == [1, 2] for o in outcomes)  # re-run from epoch 1
    assert sorted(heard) == [(n, e) for n in range(4) for e in (1, 2)]  # each epoch once
    assert {_facts(o)["size"] for o in outcomes} == {2}


def test_out_of_memory_even_alone_is_each_members_failure(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task = _task()
    monkeypatch.setattr(DataSplit, "to", failing(oom, cleanup))  # the data never fits
    outcomes = _train(task, 4)
    assert [o.number for o in outcomes] == [0, 1, 2, 3]
    for outcome in outcomes:
        assert (outcome.state, outcome.stop_reason, outcome.value) == ("fail", "error", None)
        assert outcome.error is not None and outcome.error.startswith("out of memory")
    assert len(cleanup.calls) == 7 and all(cleanup.calls)  # 4, 2, 2, then 1 alone x4: 7 tries


@pytest.mark.parametrize("where", ["stack", "step"])
def test_a_cuda_error_in_a_population_loses_the_device(
    where: str, monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task = _task()
    if where == "stack":
        monkeypatch.setattr(_fused, "StackedMLP", failing(device_assert, cleanup))
    else:
        monkeypatch.setattr(StackedOptimizer, "step", failing(device_assert, cleanup))
    heard: list[int] = []
    assert task.data is not None
    with pytest.raises(DeviceLost, match="device-side assert"):
        execute_population(
            _members(4), task=task, data=task.data, study_seed=5, device=CPU,
            config=PopulationConfig(size=4, fast=False),
            on_outcome=lambda i, o: heard.append(i),
        )  # fmt: skip
    assert heard == [] and cleanup.calls == []  # no member recorded, the allocator untouched


def test_asking_for_free_memory_inside_a_handler(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    task, cuda = _task(), torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", failing(oom, cleanup))
    assert population_size(task, 32, cuda, PopulationConfig()) == 1
    assert cleanup.calls == [True]
    monkeypatch.setattr(torch.cuda, "mem_get_info", failing(device_assert, cleanup))
    with pytest.raises(DeviceLost):
        population_size(task, 32, cuda, PopulationConfig())

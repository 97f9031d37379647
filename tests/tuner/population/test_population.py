"""Population training: K trials as one stacked computation, member by member a single run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from tuner.population import (
    Member,
    PopulationConfig,
    StackedOptimizer,
    execute_population,
    population_groups,
    population_size,
    stack_plan,
    stackable,
)
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.tasks import DataSplit, Task, build_task
from tuner.training import EpochStats, StopReason, TrainConfig, TrialOutcome, execute_trial

CPU = torch.device("cpu")
SEED = 7


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # One intra-op thread: a BLAS call then computes the same way whether it sees one
    # member's matrices or a stack's, so the two paths can be compared to the last bit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _task(optimizer: str = "sgd") -> Task:
    spec = parse_spec(
        {
            "name": "pop",
            "task": {
                "model": "mlp",
                "hidden": [32, 16],
                "dataset": "digits",
                "optimizer": optimizer,
            },
            "search": {"initializer": ["xavier_uniform"], "lr": 0.1, "batch_size": 64},
        }
    )
    return build_task(spec.task)


def _params(
    init: str, lr: float, wd: float, patience: int, batch: int = 64, **ip: Any
) -> TrialParams:
    return TrialParams(init, init, lr, wd, batch, patience, init_params=ip)


def _config(p: TrialParams, task: Task, max_epochs: int = 10) -> TrainConfig:
    return TrainConfig(
        lr=p.lr,
        weight_decay=p.weight_decay,
        batch_size=p.batch_size,
        patience=p.patience,
        max_epochs=max_epochs,
        optimizer=task.optimizer,
        momentum=task.momentum,
    )


class Recorder:
    """A per-trial hook: records what it saw; prunes at ``prune_at``."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.seen: list[EpochStats] = []
        self.prune_at = prune_at

    def __call__(self, stats: EpochStats) -> StopReason | None:
        self.seen.append(stats)
        return "pruned" if stats.epoch == self.prune_at else None


def _singles(members: list[Member], task: Task) -> list[TrialOutcome]:
    return [
        execute_trial(
            number=m.number,
            params=m.params,
            task=task,
            data=task.data,
            config=m.config,
            study_seed=SEED,
            device=CPU,
            on_epoch=m.on_epoch,
            seed_number=m.seed_number,
        )
        for m in members
    ]


def _close(a: list[EpochStats], b: list[EpochStats]) -> None:
    assert [s.epoch for s in a] == [s.epoch for s in b]
    for x, y in zip(a, b, strict=True):
        assert x.val_accuracy == pytest.approx(y.val_accuracy, rel=1e-6, abs=1e-9, nan_ok=True)
        assert x.val_loss == pytest.approx(y.val_loss, rel=1e-5, nan_ok=True)
        assert x.train_loss == pytest.approx(y.train_loss, rel=1e-5, nan_ok=True)


def _same_outcome(pop: TrialOutcome, single: TrialOutcome) -> None:
    assert pop.number == single.number
    assert (pop.state, pop.stop_reason, pop.epochs_run) == (
        single.state,
        single.stop_reason,
        single.epochs_run,
    )
    assert pop.best_epoch == single.best_epoch
    if single.value is None:
        assert pop.value is None
    else:
        assert pop.value == pytest.approx(single.value, rel=1e-6)
    assert pop.seeds == single.seeds
    assert pop.error == single.error
    _close(pop.history, single.history)
    assert pop.diagnostics == single.diagnostics  # measured on the same model before training
    assert pop.signal == single.signal  # the same t=0 signal propagation (or None, both)


@pytest.mark.parametrize(
    ("optimizer", "scale", "blowup"), [("sgd", 1.0, 1e4), ("adam", 0.1, 1e30), ("adamw", 0.1, 1e30)]
)
def test_a_population_reproduces_single_runs_member_by_member(
    optimizer: str, scale: float, blowup: float
) -> None:
    task = _task(optimizer)
    params = [
        _params("xavier_uniform", 0.05 * scale, 1e-4, 3),
        _params("kaiming_normal", 0.01 * scale, 0.0, 2),
        _params("orthogonal", 0.2 * scale, 1e-3, 10),
        _params("normal", blowup, 0.0, 3, std=1.0),  # diverges
        _params("lsuv", 0.3 * scale, 1e-2, 1),  # stops at its first bad epoch
        _params("xavier_normal", 0.05 * scale, 0.0, 10),  # pruned by its hook at epoch 3
    ]
    hooks = [Recorder(prune_at=3 if i == 5 else None) for i in range(len(params))]
    members = [
        Member(i, p, _config(p, task), on_epoch=h)
        for i, (p, h) in enumerate(zip(params, hooks, strict=True))
    ]
    single_hooks = [Recorder(prune_at=3 if i == 5 else None) for i in range(len(params))]
    singles = _singles(
        [dataclasses.replace(m, on_epoch=h) for m, h in zip(members, single_hooks, strict=True)],
        task,
    )
    pops = execute_population(members, task=task, data=task.data, study_seed=SEED, device=CPU)

    reasons = {s.stop_reason for s in singles}
    assert {"patience", "diverged", "pruned", "max_epochs"} <= reasons  # the cases are covered
    assert len({s.epochs_run for s in singles}) >= 3  # members leave at different epochs
    for pop, single, hook, single_hook in zip(pops, singles, hooks, single_hooks, strict=True):
        _same_outcome(pop, single)
        _close(hook.seen, single_hook.seen)  # the hook saw the same epochs, in order
        assert pop.manifest["population"] == {
            "size": len(members),
            "members": [m.number for m in members],
            "fast": False,
            "matmuls": "float32",
            "compiled": False,
        }
    # Every member's t=0 signal was measured on its own model, before it joined the stack.
    assert all(p.signal is not None and p.signal.jacobian_spread is not None for p in pops)
    diverged = next(p for p in pops if p.stop_reason == "diverged")
    assert not torch.isfinite(torch.tensor(diverged.history[-1].train_loss))


def test_a_retry_keeps_its_first_attempts_seeds_and_a_failing_member_fails_alone() -> None:
    task = _task()
    good = _params("xavier_uniform", 0.05, 0.0, 2)
    bad = _params("pretrained", 0.05, 0.0, 2, path="/nonexistent/weights.pt", strict=True)

    def broken(stats: EpochStats) -> StopReason | None:
        raise RuntimeError("the report could not be written")

    members = [
        Member(10, good, _config(good, task, 4), seed_number=3),
        Member(11, bad, _config(bad, task, 4)),
        Member(12, good, _config(good, task, 4), on_epoch=broken),
        Member(13, good, _config(good, task, 4)),
    ]
    pops = execute_population(members, task=task, data=task.data, study_seed=SEED, device=CPU)
    singles = _singles(members, task)
    for pop, single in zip(pops, singles, strict=True):
        _same_outcome(pop, single)
    assert pops[0].seeds == _singles([dataclasses.replace(members[0], number=3)], task)[0].seeds
    assert pops[1].stop_reason == "error" and "pretrained" in (pops[1].error or "")
    assert pops[2].error == "RuntimeError: the report could not be written"
    assert pops[3].state == "complete"


def _bn_task(data: DataSplit) -> Task:
    def build() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
        )

    return Task("bn", "relu", data, build, "sgd", 0.9)


def test_models_that_cannot_be_stacked_train_one_by_one() -> None:
    task = _bn_task(_task().data)
    assert not stackable(task)
    assert population_size(task, 64, CPU, PopulationConfig(size=8)) == 1
    params = [_params("kaiming_normal", lr, 0.0, 2) for lr in (0.01, 0.05, 0.1)]
    members = [Member(i, p, _config(p, task, 3)) for i, p in enumerate(params)]
    pops = execute_population(members, task=task, data=task.data, study_seed=SEED, device=CPU)
    for pop, single in zip(pops, _singles(members, task), strict=True):
        assert "population" not in pop.manifest  # the single-trial path ran it
        assert pop.history == single.history  # and so the very same numbers


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.PReLU(), nn.Linear(4, 2)),
        nn.Sequential(nn.Flatten(0), nn.Linear(4, 2)),
        type("Custom", (nn.Sequential,), {})(nn.Linear(4, 2)),
        nn.Sequential(nn.ReLU()),
        nn.Linear(4, 2),
    ],
)
def test_what_the_stacker_refuses(model: nn.Module) -> None:
    assert stack_plan(model) is None


def test_stack_plan_flattens_nested_sequentials() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 3), nn.GELU()), nn.Linear(3, 2))
    plan = stack_plan(model)
    assert plan is not None and [type(m) for m in plan] == [
        nn.Flatten,
        nn.Linear,
        nn.GELU,
        nn.Linear,
    ]


def test_groups_follow_the_fusable_key_in_first_seen_order_and_respect_the_limit() -> None:
    keys = [(64, "sgd"), (32, "sgd"), (64, "sgd"), (64, "sgd"), (32, "sgd"), (128, "sgd")]
    assert population_groups(keys, lambda key: 8) == [[0, 2, 3], [1, 4], [5]]
    assert population_groups(keys, lambda key: 2) == [[0, 2], [3], [1, 4], [5]]
    assert population_groups(keys, lambda key: 0) == [[0], [2], [3], [1], [4], [5]]


def test_mixed_batch_sizes_train_in_separate_populations_with_the_single_run_results() -> None:
    task = _task()
    params = [
        _params("xavier_uniform", 0.05, 0.0, 3, batch=32),
        _params("kaiming_normal", 0.02, 1e-4, 3, batch=64),
        _params("orthogonal", 0.05, 0.0, 3, batch=32),
        _params("xavier_normal", 0.03, 0.0, 3, batch=32),
        _params("kaiming_uniform", 0.05, 0.0, 3, batch=128),
        _params("kaiming_uniform", 0.02, 0.0, 3, batch=128),
    ]
    members = [Member(i, p, _config(p, task, 3)) for i, p in enumerate(params)]
    pairs = PopulationConfig(size=2)
    pops = execute_population(
        members, task=task, data=task.data, study_seed=SEED, device=CPU, config=pairs
    )
    sizes = [p.manifest.get("population", {}).get("size") for p in pops]
    # batch 32: three members, cut to populations of 2 and 1; 64 alone; 128: a pair
    assert sizes == [2, 1, 2, 1, 2, 2]
    for pop, single in zip(pops, _singles(members, task), strict=True):
        _same_outcome(pop, single)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("fast", [False, True])
def test_each_member_gets_torch_optims_own_update(name: str, fast: bool) -> None:
    torch.manual_seed(0)
    shapes = [(5, 7), (5,), (3, 5)]
    lrs, wds = [0.1, 0.01, 0.05], [0.0, 1e-2, 1e-3]
    initial = [torch.randn(len(lrs), *s) for s in shapes]
    steps = [[torch.randn(len(lrs), *s) for s in shapes] for _ in range(3)]
    stacked = [t.clone() for t in initial]
    buffers = [torch.empty_like(t) for t in stacked]  # the stack's gradient buffers
    opt = StackedOptimizer(name, lrs=lrs, weight_decays=wds, momentum=0.9, fast=fast)
    opt.bind(stacked, buffers)
    for grads in steps:
        for buffer, g in zip(buffers, grads, strict=True):
            buffer.copy_(g)
        opt.step()
    for k, (lr, wd) in enumerate(zip(lrs, wds, strict=True)):
        own = [nn.Parameter(t[k].clone()) for t in initial]
        kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
        extra: dict[str, Any] = {"momentum": 0.9} if name == "sgd" else {}
        ref = kind[name](own, lr=lr, weight_decay=wd, **extra)
        for grads in steps:
            for p, g in zip(own, grads, strict=True):
                p.grad = g[k].clone()
            ref.step()
        for p, s in zip(own, stacked, strict=True):
            if fast:  # the same rule on the whole stack at once: rounded differently
                torch.testing.assert_close(s[k], p.detach(), rtol=1e-5, atol=1e-7)
            else:  # torch.optim's own kernels, member by member
                assert torch.equal(p.detach(), s[k])


class _OpCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **kwargs or {})


def _ops_per_step(name: str, fast: bool, k: int) -> int:
    """Kernels (dispatched ops) of the third step of a K-member stack of a two-layer MLP."""
    shapes = [(32, 64), (32,), (10, 32), (10,)]
    params = [torch.randn(k, *s) for s in shapes]
    grads = [torch.randn(k, *s) for s in shapes]
    opt = StackedOptimizer(name, lrs=[0.1] * k, weight_decays=[1e-3] * k, momentum=0.9, fast=fast)
    opt.bind(params, grads)
    opt.step()
    opt.step()
    with _OpCount() as count:
        opt.step()
    return count.ops


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_a_fast_step_launches_the_same_kernels_for_any_population_size(name: str) -> None:
    assert _ops_per_step(name, True, 2) == _ops_per_step(name, True, 64)
    # exact mode pays per member for torch.optim's own kernels
    assert _ops_per_step(name, False, 64) > _ops_per_step(name, False, 2)


def test_fast_mode_trains_the_same_configurations_to_about_the_same_place() -> None:
    task = _task()
    params = [_params("xavier_uniform", 0.05, 1e-4, 10), _params("kaiming_normal", 0.02, 0.0, 10)]
    members = [Member(i, p, _config(p, task, 4)) for i, p in enumerate(params)]
    fast_mode = PopulationConfig(fast=True)
    fast = execute_population(
        members, task=task, data=task.data, study_seed=SEED, device=CPU, config=fast_mode
    )
    for pop, single in zip(fast, _singles(members, task), strict=True):
        assert pop.manifest["population"]["fast"] is True
        # bf16 where the CPU multiplies it natively (AVX512-BF16, AMX), else the fp32 kernels
        bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        assert pop.manifest["population"]["matmuls"] == ("bfloat16" if bf16 else "float32")
        assert pop.epochs_run == single.epochs_run == 4
        # the whole-stack optimizer step (and bf16 matmuls where the hardware has them)
        # rounds differently
        assert pop.value == pytest.approx(single.value, abs=0.03)


def test_members_are_reported_as_they_leave_not_when_the_population_ends() -> None:
    task = _task()
    params = [_params("xavier_uniform", 0.05, 0.0, 10), _params("kaiming_normal", 0.05, 0.0, 10)]
    hooks = [Recorder(), Recorder(prune_at=2)]
    pairs = enumerate(zip(params, hooks, strict=True))
    members = [Member(i, p, _config(p, task, 5), on_epoch=h) for i, (p, h) in pairs]
    heard: list[tuple[int, int, int]] = []  # (member, its epochs, epochs the other had seen)

    def on_outcome(i: int, outcome: TrialOutcome) -> None:
        heard.append((i, outcome.epochs_run, len(hooks[1 - i].seen)))

    pops = execute_population(
        members, task=task, data=task.data, study_seed=SEED, device=CPU, on_outcome=on_outcome
    )
    assert heard == [(1, 2, 2), (0, 5, 2)]  # the pruned one first, while the other trained on
    assert [p.stop_reason for p in pops] == ["max_epochs", "pruned"]
    assert pops[1].finished_at < pops[0].finished_at


def test_other_activations_in_place_modules_and_bias_free_layers_match_too() -> None:
    data = _task().data

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 24),
            nn.Tanh(),
            nn.Linear(24, 16, bias=False),
            nn.ELU(inplace=True),
            nn.Sequential(nn.Linear(16, 12), nn.LeakyReLU(0.1, inplace=True)),
            nn.Linear(12, 10),
        )

    task = Task("custom", "tanh", data, build, "sgd", 0.9)
    inits = ("xavier_uniform", "orthogonal")
    params = [_params(init, lr, 1e-4, 3) for init in inits for lr in (0.02, 0.1)]
    members = [Member(i, p, _config(p, task, 4)) for i, p in enumerate(params)]
    pops = execute_population(members, task=task, data=data, study_seed=SEED, device=CPU)
    assert all(p.manifest["population"]["size"] == 4 for p in pops)
    for pop, single in zip(pops, _singles(members, task), strict=True):
        _same_outcome(pop, single)

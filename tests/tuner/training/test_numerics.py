"""The process's fp32 precision (TF32 or not): set through torch's new API only, once per
process, held while a worker trains, recorded in every manifest as in effect."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import storage
from tuner.errors import TunerError
from tuner.population import Member, PopulationConfig, execute_population
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.studies import recorded_precision, replay_trial, run_study
from tuner.tasks import Task, build_task
from tuner.training import (
    FLAGS,
    TrainConfig,
    deterministic_kernels,
    fp32_precision,
    held_precision,
    precision_for,
    precision_in_effect,
    train_model_trial,
)

ROOT = Path(__file__).resolve().parents[3]
EXACT = dict.fromkeys(FLAGS, "ieee")
FAST = dict.fromkeys(FLAGS, "tf32")
#: torch's own defaults, and what these tests leave the process at: cuBLAS ieee, cuDNN tf32.
BEFORE = {"matmul": "ieee", "cudnn_conv": "tf32", "cudnn_rnn": "tf32"}


def _backends() -> dict[str, Any]:
    cudnn: Any = torch.backends.cudnn
    return {"matmul": torch.backends.cuda.matmul, "cudnn_conv": cudnn.conv, "cudnn_rnn": cudnn.rnn}


@pytest.fixture(autouse=True)
def torch_defaults() -> Iterator[None]:
    """Each test starts from (and leaves the process at) torch's default flags."""
    saved = {flag: b.fp32_precision for flag, b in _backends().items()}
    for flag, value in BEFORE.items():
        _backends()[flag].fp32_precision = value
    yield
    for flag, value in saved.items():
        _backends()[flag].fp32_precision = value


def _task() -> Task:
    spec = parse_spec(
        {
            "name": "numerics",
            "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
            "search": {"initializer": ["xavier_uniform"], "lr": 0.1, "batch_size": 64},
        }
    )
    return build_task(spec.task)


def _params() -> tuple[TrialParams, TrainConfig]:
    params = TrialParams("xavier_uniform", "xavier_uniform", 0.1, 1e-4, 64, 2)
    config = TrainConfig(lr=0.1, weight_decay=1e-4, batch_size=64, patience=2, max_epochs=2)
    return params, config


def _flags(outcome_manifest: dict[str, Any]) -> dict[str, str]:
    return dict(outcome_manifest["deterministic"]["fp32_precision"])


def test_a_trial_trains_after_tf32_was_set_through_the_new_api() -> None:
    # Once fp32_precision is set anywhere, torch raises on a read of the legacy allow_tf32:
    # the manifest used to read it, and every trial failed.
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    task = _task()
    assert task.data is not None
    params, config = _params()
    outcome = train_model_trial(
        number=0,
        params=params,
        task=task,
        data=task.data,
        config=config,
        study_seed=1,
        device=torch.device("cpu"),
    )
    assert (outcome.state, outcome.error) == ("complete", None)
    assert outcome.epochs_run == 2
    assert _flags(outcome.manifest) == {**BEFORE, "matmul": "tf32"}  # as set, not a default


def test_holders_share_one_precision_refuse_another_and_the_last_one_restores() -> None:
    assert precision_in_effect() == BEFORE and held_precision() is None
    with fp32_precision(precision_for(False)) as first:
        assert first == EXACT == precision_in_effect() == held_precision()
        with fp32_precision(EXACT) as second:  # the same precision: shared
            assert second == EXACT
        assert precision_in_effect() == EXACT  # one holder left: still held
        with pytest.raises(TunerError, match="process-wide"), fp32_precision(FAST):
            pass  # pragma: no cover - refused before the block runs
        assert precision_in_effect() == EXACT  # the refusal changed nothing
    assert precision_in_effect() == BEFORE and held_precision() is None
    with pytest.raises(TunerError, match="bf16"), fp32_precision({"matmul": "bf16"}):
        pass  # pragma: no cover


def _spec(name: str) -> Any:
    return parse_spec(
        {
            "name": name,
            "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
            "search": {
                "initializer": ["xavier_normal", "kaiming_normal"],
                "lr": {"low": 0.01, "high": 0.3, "log": True},
                "batch_size": [64],
                "patience": 1,
            },
            "budget": {"n_trials": 4, "max_epochs": 2},
            "sampler": "random",
            "pruner": "none",
        }
    )


@pytest.mark.parametrize(
    ("fast", "population"), [(True, 1), (False, 2)], ids=["fast-single", "exact-populations"]
)
def test_a_worker_of_two_slots_holds_its_precision_and_every_manifest_records_it(
    sqlite_url: str, fast: bool, population: int
) -> None:
    set_by_worker = FAST if fast else EXACT
    run_study(_spec("flags"), database_url=sqlite_url, slots=2, population=population, fast=fast)
    # restored once the slots are done: what the process had before, not torch's reset
    assert precision_in_effect() == BEFORE and held_precision() is None
    db = storage.Database(sqlite_url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, "flags", order_by="trial_number")
            session.expunge_all()
        assert len(rows) == 4 and all(r.state == "complete" for r in rows)
        manifests = [r.manifest_json or {} for r in rows]
        # read in the slot threads as each trial trained: the worker's, in every trial
        assert [_flags(m) for m in manifests] == [set_by_worker] * 4
        if population > 1:
            assert all(m["population"]["fast"] is False for m in manifests)
        # exact: cuDNN's TF32 (torch's default) is off too, so CNN runs are exact as well
        assert _flags(manifests[0])["cudnn_conv"] == ("tf32" if fast else "ieee")
        replay = replay_trial(db, "flags", rows[0].trial_number)  # at the recorded precision
    finally:
        db.dispose()
    assert replay.matches
    assert _flags(replay.outcome.manifest) == set_by_worker
    assert precision_in_effect() == BEFORE


@pytest.mark.parametrize("held", [FAST, EXACT], ids=["tf32", "ieee"])
def test_a_population_records_the_precision_in_effect_and_leaves_it_alone(
    held: dict[str, str],
) -> None:
    task = _task()
    assert task.data is not None
    params, config = _params()
    members = [Member(n, params, config) for n in range(2)]
    cpu = torch.device("cpu")
    with fp32_precision(held):
        outcomes = execute_population(
            members,
            task=task,
            data=task.data,
            study_seed=3,
            device=cpu,
            config=PopulationConfig(size=2, fast=held == FAST),
        )
        assert precision_in_effect() == held  # the population did not toggle it
    assert [o.state for o in outcomes] == ["complete", "complete"]
    assert [_flags(o.manifest) for o in outcomes] == [held, held]
    assert all(o.manifest["population"]["size"] == 2 for o in outcomes)
    assert precision_in_effect() == BEFORE


def test_replays_read_the_precision_of_new_and_old_manifests() -> None:
    assert recorded_precision({"deterministic": {"fp32_precision": FAST}}) == FAST
    assert recorded_precision({"deterministic": {"tf32_matmul": True}}) == {"matmul": "tf32"}
    assert recorded_precision({"deterministic": {"tf32_matmul": False}}) == {"matmul": "ieee"}
    assert recorded_precision({"deterministic": {"num_threads": 1}}) is None


def test_the_tuner_never_touches_the_legacy_tf32_flags() -> None:
    # Reading torch.backends.cuda.matmul.allow_tf32 raises once the new API was used.
    uses = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "tuner").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "allow_tf32"
    ]
    assert uses == []


def test_exact_on_cuda_holds_deterministic_kernels_and_restores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What makes an exact CUDA trial reproducible, held while it trains: torch's
    deterministic algorithms, cuDNN deterministic without its autotuner, and cuBLAS's
    workspace set before cuBLAS starts (a user's own setting kept). Nothing on the CPU."""
    cudnn: Any = torch.backends.cudnn
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark)
    with deterministic_kernels(torch.device("cpu"), on=True):
        assert (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic) == before[:2]
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    with deterministic_kernels(torch.device("cuda", 0), on=False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]
    cudnn.benchmark = True  # as a user's script might leave it
    try:
        with deterministic_kernels(torch.device("cuda", 0), on=True):
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.is_deterministic_algorithms_warn_only_enabled()
            assert cudnn.deterministic and not cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled() == before[0]
        assert cudnn.deterministic == before[1] and cudnn.benchmark is True
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
        with deterministic_kernels(torch.device("cuda", 0), on=True):
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        cudnn.benchmark = before[2]

"""Running one trial: sample, seed, build, initialize, train, and describe the outcome.

Nothing here raises for a trial's own failure: divergence, an exception or
running out of memory all end in a :class:`TrialOutcome` with a stop reason,
so the caller always has a state to record. A lost device is no trial's failure: it raises
:class:`~tuner.errors.DeviceLost` (see :mod:`_failure`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import torch
from torch import nn

from storage import ReplicateData
from tuner.inits import LayerRecord, apply_initializer
from tuner.search import TrialParams
from tuner.spec import SeedDesign
from tuner.tasks import DataSplit, Task
from tuner.training._diagnostics import LayerDiagnostics, diagnose
from tuner.training._failure import failed_fields
from tuner.training._knobs import activation_of, model_knobs
from tuner.training._loop import (
    EpochStats,
    ReplicateResult,
    StopReason,
    TrainConfig,
    TrainResult,
    loss_of,
    train_replicates,
)
from tuner.training._mup import mup_rescale, task_records
from tuner.training._numerics import precision_in_effect
from tuner.training._seeds import replicate_seeds
from tuner.training._signal import TrialSignal, measure_signal

TrialState = Literal["complete", "pruned", "fail"]
CALIBRATION_ROWS = 256  # the fixed batch for LSUV and the t=0 diagnostics: the first train rows
log = logging.getLogger("tuner.trial")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("torch", "numpy", "optuna", "init-tuner"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def manifest(
    *,
    seeds: list[dict[str, int]],
    params: TrialParams,
    config: TrainConfig,
    device: torch.device,
    layers: list[LayerRecord],
    seed_number: int | None = None,
    records: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to re-run a trial and to know what ran: seeds, versions, flags, init;
    ``records``: the task's own entries (:attr:`Task.records`: muP, a transfer's source)."""
    return {
        "seeds": seeds,
        "seed_number": seed_number,  # the trial number the seeds derive from (a retry's first)
        "versions": package_versions(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "deterministic": {
            "algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            # read now, as the trial trains: what its process holds (see _numerics)
            "fp32_precision": precision_in_effect(),
            "num_threads": torch.get_num_threads(),
        },
        "train": asdict(config),
        "initializer": {"label": params.initializer, "name": params.initializer_name},
        "init_params": dict(params.init_params),
        **(
            {"init_groups": {g: dict(c) for g, c in params.groups.items()}} if params.groups else {}
        ),
        "layers": [asdict(layer) for layer in layers],
        **copy.deepcopy(dict(records or {})),
    }


@dataclass
class TrialOutcome:
    number: int
    params: TrialParams
    state: TrialState
    stop_reason: StopReason
    value: float | None
    best_epoch: int | None
    epochs_run: int
    started_at: datetime
    finished_at: datetime
    duration_s: float
    device: str
    seeds: dict[str, int]
    history: list[EpochStats] = field(default_factory=list)
    error: str | None = None
    diagnostics: list[LayerDiagnostics] = field(default_factory=list)
    signal: TrialSignal | None = None  # signal propagation at t=0 (:mod:`_signal`)
    manifest: dict[str, Any] = field(default_factory=dict)
    replicates: list[ReplicateData] = field(default_factory=list)  # one per seed, when k > 1
    value_std: float | None = None  # across replicates


def state_for(result: TrainResult) -> TrialState:
    if result.stop_reason == "pruned":
        return "pruned"
    if result.value is None:  # diverged (or stopped) before any usable epoch
        return "fail"
    return "complete"


def result_fields(result: TrainResult) -> dict[str, Any]:
    """The outcome fields of a trial that trained to its end (:func:`failed_fields` for one
    that raised)."""
    return {
        "state": state_for(result),
        "stop_reason": result.stop_reason,
        "value": result.value,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "history": result.history,
    }


GLOBAL_RNG = threading.Lock()


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (None: left alone), restored on exit.

    Process-wide: set it before starting threads that compute, not from inside one.
    """
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def initialize(
    model: nn.Module,
    task: Task,
    params: TrialParams,
    init_seed: int,
    calibration: torch.Tensor | None,
) -> list[LayerRecord]:
    """The trial's initializer on ``model``, wherever it lives: every draw is made on the CPU
    from a generator seeded with ``init_seed`` and copied to the model's device, so one seed
    gives the same weights on the CPU and on a GPU (LSUV's rescaling then measures on the
    model's device)."""
    layers = apply_initializer(
        model,
        params.initializer_name,
        params.init_params,
        activation=activation_of(task, params),
        generator=torch.Generator(device="cpu").manual_seed(init_seed),
        calibration=calibration,
        groups=params.group_choices(),
    )
    mup_rescale(model, layers)
    return layers


def build_initialized(
    task: Task, params: TrialParams, data: DataSplit, device: torch.device, init_seed: int
) -> tuple[nn.Module, list[LayerRecord]]:
    # Modules draw their construction-time weights from the global RNG, on the CPU (built
    # there, then moved): one build at a time per process, so slots cannot interleave draws.
    with GLOBAL_RNG:
        torch.manual_seed(init_seed)
        build, _ = task.model_and_data()
        model = build(**model_knobs(params)).to(device)
        layers = initialize(model, task, params, init_seed, data.x_train[:CALIBRATION_ROWS])
    return model, layers


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return loss_of(out, y, regression=True)


def calibration_diagnostics(
    model: torch.nn.Module, data: DataSplit, task: Task, activation: str | None = None
) -> list[LayerDiagnostics]:
    try:
        x, y = data.x_train[:CALIBRATION_ROWS], data.y_train[:CALIBRATION_ROWS]
        loss = _mse if data.regression else None
        return diagnose(model, x, y, activation=activation or task.activation, loss=loss)
    except Exception as exc:  # a model the probe cannot read still trains
        log.warning("no diagnostics for task %s: %r", task.name, exc)
        return []


def calibration_signal(model: torch.nn.Module, data: DataSplit) -> TrialSignal:
    """The signal propagation of ``model`` at t=0 on the calibration batch (never raises)."""
    return measure_signal(model, data.x_train[:CALIBRATION_ROWS])


def _replicate_rows(
    seeds: list[dict[str, int]], results: list[ReplicateResult]
) -> list[ReplicateData]:
    return [
        ReplicateData(
            replicate=s["replicate"],
            init_seed=s["init"],
            data_seed=s["data"],
            value=r.value,
            best_value=r.best_value,
            best_epoch=r.best_epoch,
            epochs_run=len(r.history),
        )
        for s, r in zip(seeds, results, strict=True)
    ]


def _train_into(
    outcome: dict[str, Any],
    seeds: list[dict[str, int]],
    params: TrialParams,
    task: Task,
    data: DataSplit,
    config: TrainConfig,
    device: torch.device,
    on_epoch: Callable[[EpochStats], StopReason | None] | None,
    root: int,
) -> None:
    """Move the data, build, initialize and train; the outcome's fields into ``outcome``."""
    data = data.to(device)  # a no-op when it is there already (a worker moves it once)
    built = [build_initialized(task, params, data, device, s["init"]) for s in seeds]
    model, layers = built[0]
    outcome["manifest"] = manifest(
        seeds=seeds,
        params=params,
        config=config,
        device=device,
        layers=layers,
        seed_number=root,
        records=task_records(task, model, config, layers),
    )
    activation = activation_of(task, params)
    outcome["diagnostics"] = calibration_diagnostics(built[0][0], data, task, activation)
    outcome["signal"] = calibration_signal(built[0][0], data)
    result, per_seed = train_replicates(
        [model for model, _ in built],
        data,
        config,
        generators=[torch.Generator(device="cpu").manual_seed(s["data"]) for s in seeds],
        on_epoch=on_epoch,
    )
    outcome.update(result_fields(result))
    if len(seeds) > 1:
        outcome["replicates"] = _replicate_rows(seeds, per_seed)
        values = [r.value for r in per_seed if r.value is not None]
        outcome["value_std"] = statistics.pstdev(values) if len(values) > 1 else None


def train_model_trial(
    *,
    number: int,
    params: TrialParams,
    task: Task,
    data: DataSplit,
    config: TrainConfig,
    study_seed: int,
    device: torch.device,
    on_epoch: Callable[[EpochStats], StopReason | None] | None = None,
    seed_number: int | None = None,
    replicates: int | SeedDesign = 1,
    seeds: list[dict[str, int]] | None = None,
) -> TrialOutcome:
    """Train one configuration in the built-in loop; every failure becomes an outcome, except
    interrupts and a lost device (:class:`~tuner.errors.DeviceLost`).

    Seeds derive from ``seed_number`` (default: the trial number); a retry passes its first
    attempt's number, so it re-runs the same computation. With ``replicates`` k > 1 the
    configuration trains under k seed pairs in lockstep and is judged on their mean; a
    :class:`~tuner.spec.SeedDesign` crosses its init seeds with its data-order seeds.
    Before the first update the first replicate's signal is measured (:mod:`_diagnostics`,
    :mod:`_signal`).
    ``seeds`` (a manifest's, for a replay) replaces the derived seeds and ``replicates``.
    """
    root = number if seed_number is None else seed_number
    if seeds is None:
        seeds = replicate_seeds(study_seed, root, replicates)
    started, t0 = datetime.now(UTC), time.perf_counter()
    outcome: dict[str, Any] = {}
    try:  # the work in its own frame: once it failed, its tensors go with the traceback
        _train_into(outcome, seeds, params, task, data, config, device, on_epoch, root)
    except Exception as exc:
        outcome.update(failed_fields(exc, device))
    return TrialOutcome(
        number=number,
        params=params,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_s=time.perf_counter() - t0,
        device=str(device),
        seeds={"init": seeds[0]["init"], "data": seeds[0]["data"]},
        **outcome,
    )

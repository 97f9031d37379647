"""Preflight: checks that catch a broken set-up before a study spends its budget.

Four checks, all seeded, on the spec's task (:mod:`tuner.preflight._checks` holds the
training ones and their thresholds):

* t=0 diagnostics for every initializer in the spec (searched parameters at the middle of
  their range), flagging vanishing or exploding signal, dead or saturated units, and a
  fully connected tanh/sigmoid net deeper than its mean-field depth scale allows (with the
  input-output Jacobian's spectrum beside them: ``tuner.training.measure_signal``);
* overfit one batch: a model that cannot drive one batch's loss near zero is broken (a frozen
  model, no gradient flow, a bug in the forward pass);
* an lr range test by decades with the task's optimizer: where the loss diverges, and a
  proposed ``search.lr`` range;
* generalization: a short run in the proposed range whose validation figures stay at chance
  means the labels do not follow from the inputs (e.g. shuffled against them).

The three training checks start from the spec's first initializer that looks healthy at t=0
(PyTorch's default when none does), so a bad initializer is blamed on itself, not the model.

The overall verdict is ``ok`` or ``problems``; each problem is a sentence naming its check.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

import torch

from tuner.errors import SpecError
from tuner.preflight._checks import (
    OVERFIT_ROWS,
    GeneralizationCheck,
    LrRangeTest,
    OverfitCheck,
    generalization_check,
    lr_range_test,
    overfit_one_batch,
)
from tuner.search import TrialParams
from tuner.spec import (
    FloatRange,
    InitializerEntry,
    IntRange,
    StudySpec,
    dim_values,
    label_entries,
    parse_spec,
)
from tuner.studies import check_task
from tuner.tasks import Task, build_task
from tuner.training import (
    CALIBRATION_ROWS,
    LayerDiagnostics,
    TrialSignal,
    build_initialized,
    describe_error,
    diagnose,
    measure_signal,
    resolve_device,
    signal_problems,
    trial_seeds,
)


@dataclass(frozen=True)
class InitializerCheck:
    """One initializer entry of the spec, measured at initialization."""

    label: str
    name: str
    params: dict[str, Any]  # the concrete values measured
    layers: list[LayerDiagnostics]
    problems: list[str]
    error: str | None = None  # the measurement itself failed
    signal: TrialSignal | None = None  # signal propagation: Jacobian spectrum, mean field
    groups: dict[str, str] = field(default_factory=dict)  # layer group: label measured with it

    @property
    def flagged(self) -> bool:
        return bool(self.problems)


@dataclass
class PreflightReport:
    spec_name: str
    task: str
    device: str
    seed: int
    reference_initializer: str  # the training checks' initializer: the first healthy one
    overfit: OverfitCheck
    lr_test: LrRangeTest
    generalization: GeneralizationCheck
    initializers: list[InitializerCheck]
    problems: list[str]
    notes: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # labels of the dropped initializers
    pruned_spec: dict[str, Any] | None = None  # with prune_inits: the spec to run
    duration_s: float = 0.0

    @property
    def verdict(self) -> Literal["ok", "problems"]:
        return "problems" if self.problems else "ok"

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **asdict(self)}


def middle(dim: Any) -> Any:
    """A concrete value for a searched dimension: the (geometric, for log) middle of a range,
    the median of a list of numbers, the first of other lists; fixed values stay."""
    if isinstance(dim, FloatRange | IntRange):
        mid = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2
        if dim.step:
            mid = dim.low + round((mid - dim.low) / dim.step) * dim.step
        return round(mid) if isinstance(dim, IntRange) else mid
    if isinstance(dim, list):
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in dim)
        return sorted(dim)[(len(dim) - 1) // 2] if numbers else dim[0]
    return dim


def _params(spec: StudySpec, label: str, entry: InitializerEntry) -> TrialParams:
    search = spec.search
    return TrialParams(
        initializer=label,
        initializer_name=entry.name,
        init_params={k: middle(v) for k, v in entry.params.items()},
        lr=float(middle(search.lr)),
        weight_decay=float(middle(search.weight_decay)),
        batch_size=int(middle(search.batch_size)),
        patience=int(middle(search.patience)),
        extra={name: middle(dim) for name, dim in search.extras.items()},
        groups={  # each layer group at its first choice
            group: {
                "label": label_entries(entries)[0][0],
                "name": entries[0].name,
                "params": {k: middle(v) for k, v in entries[0].params.items()},
            }
            for group, entries in search.initializer_groups.items()
        },
    )


def _initializer_checks(
    spec: StudySpec, task: Task, device: torch.device, seed: int
) -> list[InitializerCheck]:
    _, data = task.model_and_data()
    x, y = data.x_train[:CALIBRATION_ROWS], data.y_train[:CALIBRATION_ROWS]
    checks = []
    for label, entry in label_entries(spec.search.initializer):
        params = _params(spec, label, entry)
        layers: list[LayerDiagnostics] = []
        problems: list[str] = []
        error, signal = None, None
        try:
            model, _ = build_initialized(task, params, data, device, seed)
            signal = measure_signal(model, x)
            layers = diagnose(model, x, y, activation=task.activation)
            problems = signal_problems(layers)
        except Exception as exc:  # e.g. a frozen model has no gradient to measure
            error = describe_error(exc)
        if signal is not None and signal.warning:
            problems.append(signal.warning)
        checks.append(
            InitializerCheck(
                label,
                entry.name,
                params.init_params,
                layers,
                problems,
                error,
                signal,
                {group: choice["label"] for group, choice in params.groups.items()},
            )
        )
    return checks


def prune_initializers(spec: StudySpec, flagged: set[str]) -> tuple[StudySpec, list[str], str]:
    """``spec`` without the flagged initializer labels: (spec, dropped labels, a sentence).

    Never drops them all: with every initializer flagged the spec stays as it is.
    """
    labels = [label for label, _ in label_entries(spec.search.initializer)]
    dropped = [label for label in labels if label in flagged]
    if not dropped:
        return spec, [], "no initializer was flagged; the spec is unchanged"
    if len(dropped) == len(labels):
        return spec, [], "every initializer was flagged; none dropped, the spec is unchanged"
    data = spec.to_json()
    entries = data["search"]["initializer"]
    data["search"]["initializer"] = [
        e for e, lb in zip(entries, labels, strict=True) if lb not in flagged
    ]
    try:
        pruned = parse_spec(data)
    except SpecError as exc:  # e.g. a grid sampler left with nothing to enumerate
        return spec, [], f"dropping {', '.join(dropped)} leaves an invalid spec ({exc.issues[0]})"
    return pruned, dropped, f"dropped flagged initializer(s): {', '.join(dropped)}"


def _lr_notes(spec: StudySpec, lr_test: LrRangeTest) -> list[str]:
    above = lr_test.diverges_at
    if above is None or not any(v >= above for v in dim_values(spec.search.lr)):
        return []
    return [
        f"search.lr reaches {max(dim_values(spec.search.lr)):g}; the loss diverged at lr "
        f"{above:g} in the range test (proposed: {lr_test.proposed_lr})"
    ]


CheckT = TypeVar("CheckT", OverfitCheck, LrRangeTest, GeneralizationCheck)


def _guarded(kind: type[CheckT], run: Callable[[], CheckT]) -> CheckT:
    try:
        return run()
    except Exception as exc:  # a model that cannot even train is a finding, not a crash
        return kind("fail", f"training raised {describe_error(exc)}")


def _training_checks(
    task: Task, reference: TrialParams, device: torch.device, seed: int
) -> tuple[OverfitCheck, LrRangeTest, GeneralizationCheck]:
    _, data = task.model_and_data()
    init_seed, data_seed = trial_seeds(seed, 0)

    def fresh() -> torch.nn.Module:
        return build_initialized(task, reference, data, device, init_seed)[0]

    x, y = data.x_train[:OVERFIT_ROWS], data.y_train[:OVERFIT_ROWS]
    overfit = _guarded(OverfitCheck, lambda: overfit_one_batch(fresh(), x, y))
    opt, momentum, batch = task.optimizer, task.momentum, reference.batch_size
    lr_test = _guarded(
        LrRangeTest,
        lambda: lr_range_test(
            fresh, data, optimizer=opt, momentum=momentum, batch_size=batch, seed=data_seed
        ),
    )
    found = lr_test.proposed_lr
    lr = math.sqrt(found["low"] * found["high"]) if found else None
    generalization = _guarded(
        GeneralizationCheck,
        lambda: generalization_check(
            fresh(), data, lr=lr, optimizer=opt, momentum=momentum, batch_size=batch, seed=data_seed
        ),
    )
    return overfit, lr_test, generalization


def run_preflight(
    spec: StudySpec,
    *,
    device: torch.device | str = "cpu",
    task: Task | None = None,
    prune_inits: bool = False,
) -> PreflightReport:
    """Run every check on ``spec``'s task, seeded: on CPU a spec always gives the same figures.

    The training checks start from the spec's first initializer that looks healthy at t=0
    (PyTorch's default when none does). With ``prune_inits`` the report carries the spec
    without the flagged initializers (never without all of them). Raises SpecError or
    TaskError when the spec cannot run at all, as submitting it would.
    """
    t0 = time.perf_counter()
    device = resolve_device(device) if isinstance(device, str) else device
    task = task or build_task(spec.task)
    check_task(spec, task)
    if task.build_model is None or task.data is None:
        why = (
            f"task {task.name!r} trains with its own function and has no build_model() and "
            "data to probe; give the plugin build_model() (and load_data()) to run this check"
        )
        return _skipped(spec, task, device, t0, why)
    if task.data.regression:
        why = "the checks are a classifier's (cross-entropy, accuracy against chance)"
        return _skipped(spec, task, device, t0, f"regression: {why}")
    task = replace(task, data=task.data.to(device))
    initializers = _initializer_checks(spec, task, device, trial_seeds(spec.seed, 0)[0])
    healthy = [c.label for c in initializers if not (c.flagged or c.error)]
    label = healthy[0] if healthy else "default"
    entries = dict(label_entries(spec.search.initializer))
    entry = entries[label] if label in entries else InitializerEntry(name=label)  # "default"
    overfit, lr_test, generalization = _training_checks(
        task, _params(spec, label, entry), device, spec.seed
    )
    problems = [
        f"{name}: {check.reason}"
        for name, check in (
            ("overfit one batch", overfit),
            ("lr range test", lr_test),
            ("generalization", generalization),
        )
        if check.status == "fail"
    ]
    problems += [f"initializer {c.label}: {p}" for c in initializers for p in c.problems]
    notes = [
        f"initializer {c.label}: t=0 diagnostics could not be measured: {c.error}"
        for c in initializers
        if c.error
    ]
    report = PreflightReport(
        spec_name=spec.name,
        task=task.name,
        device=str(device),
        seed=spec.seed,
        reference_initializer=label,
        overfit=overfit,
        lr_test=lr_test,
        generalization=generalization,
        initializers=initializers,
        problems=problems,
        notes=notes + _lr_notes(spec, lr_test),
    )
    if prune_inits:
        flagged = {c.label for c in initializers if c.flagged}
        pruned, report.pruned, note = prune_initializers(spec, flagged)
        report.pruned_spec = pruned.to_json()
        report.notes.append(note)
    report.duration_s = time.perf_counter() - t0
    return report


def _skipped(
    spec: StudySpec, task: Task, device: torch.device, t0: float, why: str
) -> PreflightReport:
    """The report of a task the checks cannot run on: each says it was skipped, and why."""
    return PreflightReport(
        spec_name=spec.name,
        task=task.name,
        device=str(device),
        seed=spec.seed,
        reference_initializer="",
        overfit=OverfitCheck("skipped", why),
        lr_test=LrRangeTest("skipped", why),
        generalization=GeneralizationCheck("skipped", why),
        initializers=[],
        problems=[],
        notes=[f"skipped every check: {why}"],
        duration_s=time.perf_counter() - t0,
    )

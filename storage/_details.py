"""A trial's child rows: per-layer diagnostics at initialization, and seed replicates."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage._errors import translate_errors
from storage._models import LayerDiagnostic, TrialReplicate, TrialResult


@dataclasses.dataclass(frozen=True)
class LayerDiagnosticsData:
    """The signal through one layer at initialization (``dataclasses.asdict`` is its JSON)."""

    index: int  # depth: 0 for the first parameterized layer the input reaches
    name: str  # qualified module name, e.g. "3"
    kind: str  # module class, e.g. "Linear"
    fan_in: int
    fan_out: int
    act_mean: float  # after the activation (the last layer: its raw output)
    act_std: float
    preact_std: float
    dead_frac: float | None  # ReLU-family activations only
    saturated_frac: float | None  # tanh/sigmoid only
    weight_std: float
    grad_std: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ReplicateData:
    """One seed of a replicated trial."""

    replicate: int
    init_seed: int
    data_seed: int
    value: float | None  # at the trial's best epoch (of the mean curve)
    best_value: float | None  # this seed's own best
    best_epoch: int | None
    epochs_run: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DepthProfile:
    """Mean t=0 figures of one layer depth over one initializer's trials."""

    initializer: str
    layer_index: int
    n_trials: int
    act_std: float | None
    preact_std: float | None
    grad_std: float | None
    weight_std: float | None
    dead_frac: float | None
    saturated_frac: float | None


_RENAMED = {"index": "layer_index", "name": "layer_name", "kind": "layer_kind"}


def as_layer(data: LayerDiagnosticsData | Mapping[str, Any]) -> LayerDiagnosticsData:
    return data if isinstance(data, LayerDiagnosticsData) else LayerDiagnosticsData(**data)


def as_replicate(data: ReplicateData | Mapping[str, Any]) -> ReplicateData:
    return data if isinstance(data, ReplicateData) else ReplicateData(**data)


def write_trial_details(
    session: Session,
    study_name: str,
    trial_number: int,
    diagnostics: Sequence[LayerDiagnosticsData],
    replicates: Sequence[ReplicateData],
) -> None:
    """Replace a trial's child rows (its results row must exist); part of the caller's txn."""
    key = {"study_name": study_name, "trial_number": trial_number}
    for model in (LayerDiagnostic, TrialReplicate):
        session.execute(
            sa.delete(model).where(
                model.study_name == study_name, model.trial_number == trial_number
            )
        )
    if diagnostics:
        rows = [
            {**key, **{_RENAMED.get(k, k): v for k, v in d.to_json().items()}} for d in diagnostics
        ]
        session.execute(sa.insert(LayerDiagnostic), rows)
    if replicates:
        session.execute(sa.insert(TrialReplicate), [{**key, **r.to_json()} for r in replicates])


@translate_errors
def get_layer_diagnostics(
    session: Session, study_name: str, trial_number: int
) -> list[LayerDiagnosticsData]:
    """A trial's per-layer diagnostics, first layer first (empty if none were measured)."""
    rows = session.scalars(
        sa.select(LayerDiagnostic)
        .where(
            LayerDiagnostic.study_name == study_name,
            LayerDiagnostic.trial_number == trial_number,
        )
        .order_by(LayerDiagnostic.layer_index)
    )
    inverse = {v: k for k, v in _RENAMED.items()}
    names = [inverse.get(f.name, f.name) for f in dataclasses.fields(LayerDiagnosticsData)]
    return [
        LayerDiagnosticsData(**{n: getattr(row, _RENAMED.get(n, n)) for n in names}) for row in rows
    ]


@translate_errors
def get_trial_replicates(
    session: Session, study_name: str, trial_number: int
) -> list[ReplicateData]:
    rows = session.scalars(
        sa.select(TrialReplicate)
        .where(TrialReplicate.study_name == study_name, TrialReplicate.trial_number == trial_number)
        .order_by(TrialReplicate.replicate)
    )
    names = [f.name for f in dataclasses.fields(ReplicateData)]
    return [ReplicateData(**{n: getattr(row, n) for n in names}) for row in rows]


@translate_errors
def replicates_by_trial(
    session: Session, study_name: str, *, state: str = "complete"
) -> list[tuple[int, str, list[ReplicateData]]]:
    """(trial number, initializer, replicates) of each trial in ``state`` that has replicate
    rows, by trial number (one query)."""
    r = TrialReplicate
    stmt = (
        sa.select(r, TrialResult.initializer)
        .join(
            TrialResult,
            (TrialResult.study_name == r.study_name) & (TrialResult.trial_number == r.trial_number),
        )
        .where(r.study_name == study_name, TrialResult.state == state)
        .order_by(r.trial_number, r.replicate)
    )
    names = [f.name for f in dataclasses.fields(ReplicateData)]
    out: list[tuple[int, str, list[ReplicateData]]] = []
    for number, group in itertools.groupby(
        session.execute(stmt), key=lambda row: row[0].trial_number
    ):
        rows = list(group)
        replicates = [ReplicateData(**{n: getattr(row[0], n) for n in names}) for row in rows]
        out.append((number, rows[0][1], replicates))
    return out


@translate_errors
def diagnostics_by_initializer(session: Session, study_name: str) -> list[DepthProfile]:
    """Per initializer and layer depth, the mean t=0 figures over its trials (one query)."""
    d = LayerDiagnostic
    stmt = (
        sa.select(
            TrialResult.initializer,
            d.layer_index,
            sa.func.count(d.id).label("n_trials"),
            *(
                sa.func.avg(getattr(d, c)).label(c)
                for c in (
                    "act_std",
                    "preact_std",
                    "grad_std",
                    "weight_std",
                    "dead_frac",
                    "saturated_frac",
                )
            ),
        )
        .join(
            TrialResult,
            (TrialResult.study_name == d.study_name) & (TrialResult.trial_number == d.trial_number),
        )
        .where(d.study_name == study_name)
        .group_by(TrialResult.initializer, d.layer_index)
        .order_by(TrialResult.initializer, d.layer_index)
    )

    def num(value: Any) -> float | None:
        return None if value is None else float(value)

    return [
        DepthProfile(
            initializer=row.initializer,
            layer_index=int(row.layer_index),
            n_trials=int(row.n_trials),
            act_std=num(row.act_std),
            preact_std=num(row.preact_std),
            grad_std=num(row.grad_std),
            weight_std=num(row.weight_std),
            dead_frac=num(row.dead_frac),
            saturated_frac=num(row.saturated_frac),
        )
        for row in session.execute(stmt)
    ]

"""Sampling: a trial's concrete configuration, asked of Optuna from the search space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

from tuner.spec import FloatRange, IntRange, SearchSpec, label_entries


@dataclass(frozen=True)
class TrialParams:
    """The concrete configuration of one trial."""

    initializer: str  # the label: the canonical name unless entries repeat a name
    initializer_name: str
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    init_params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # the task's own hyperparameters

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialParams:
        """The inverse of :meth:`to_json` (other keys of a stored ``params_json`` ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def as_flat(self) -> dict[str, Any]:
        """The five dimensions and the extra hyperparameters, by name, as a task sees them."""
        return {
            "initializer": self.initializer,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "patience": self.patience,
            **self.extra,
        }

    def to_json(self) -> dict[str, Any]:
        extra = {"extra": dict(self.extra)} if self.extra else {}
        return {
            "initializer": self.initializer,
            "initializer_name": self.initializer_name,
            "init_params": dict(self.init_params),
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "patience": self.patience,
            **extra,
        }


def _suggest(trial: optuna.trial.BaseTrial, name: str, dim: Any) -> Any:
    if isinstance(dim, FloatRange):
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log, step=dim.step)
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    if isinstance(dim, list):
        return dim[0] if len(dim) == 1 else trial.suggest_categorical(name, dim)
    return dim


def suggest(trial: optuna.trial.BaseTrial, search: SearchSpec) -> TrialParams:
    """Ask Optuna for one configuration (define-by-run, so init params stay conditional)."""
    labelled = dict(label_entries(search.initializer))
    label = _suggest(trial, "initializer", list(labelled))
    entry = labelled[label]
    init_params = {k: _suggest(trial, f"{label}.{k}", v) for k, v in entry.params.items()}
    return TrialParams(
        initializer=label,
        initializer_name=entry.name,
        init_params=init_params,
        lr=float(_suggest(trial, "lr", search.lr)),
        weight_decay=float(_suggest(trial, "weight_decay", search.weight_decay)),
        batch_size=int(_suggest(trial, "batch_size", search.batch_size)),
        patience=int(_suggest(trial, "patience", search.patience)),
        extra={name: _suggest(trial, name, dim) for name, dim in search.extras.items()},
    )

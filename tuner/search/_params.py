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
    #: Per layer group given its own choice: {"label", "name", "params"}.
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The initializer as one readable label: ``xavier_uniform; recurrent=orthogonal``."""
        return "; ".join([self.initializer, *(f"{g}={c['label']}" for g, c in self.groups.items())])

    def group_choices(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Per group: (initializer name, its parameters), as ``apply_initializer`` takes them."""
        return {g: (c["name"], dict(c["params"])) for g, c in self.groups.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialParams:
        """The inverse of :meth:`to_json` (other keys of a stored ``params_json`` ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def as_flat(self) -> dict[str, Any]:
        """The five dimensions and the extra hyperparameters, by name, as a task sees them."""
        return {
            "initializer": self.initializer,
            **{f"initializer.{g}": c["label"] for g, c in self.groups.items()},
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "patience": self.patience,
            **self.extra,
        }

    def to_json(self) -> dict[str, Any]:
        extra = {"extra": dict(self.extra)} if self.extra else {}
        if self.groups:
            extra["groups"] = {g: dict(c) for g, c in self.groups.items()}
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
    """Ask Optuna for one configuration (define-by-run, so init params stay conditional).

    A layer group's choice is ``initializer.<group>``, its parameters ``<group>.<label>.<k>``.
    """
    labelled = dict(label_entries(search.initializer))
    label = _suggest(trial, "initializer", list(labelled))
    entry = labelled[label]
    init_params = {k: _suggest(trial, f"{label}.{k}", v) for k, v in entry.params.items()}
    groups: dict[str, dict[str, Any]] = {}
    for group, entries in search.initializer_groups.items():
        by_label = dict(label_entries(entries))
        chosen = _suggest(trial, f"initializer.{group}", list(by_label))
        params = {
            k: _suggest(trial, f"{group}.{chosen}.{k}", v)
            for k, v in by_label[chosen].params.items()
        }
        groups[group] = {"label": chosen, "name": by_label[chosen].name, "params": params}
    return TrialParams(
        groups=groups,
        initializer=label,
        initializer_name=entry.name,
        init_params=init_params,
        lr=float(_suggest(trial, "lr", search.lr)),
        weight_decay=float(_suggest(trial, "weight_decay", search.weight_decay)),
        batch_size=int(_suggest(trial, "batch_size", search.batch_size)),
        patience=int(_suggest(trial, "patience", search.patience)),
        extra={name: _suggest(trial, name, dim) for name, dim in search.extras.items()},
    )

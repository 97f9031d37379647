"""Samplers and pruners as the spec names them (Optuna builds them: :mod:`tuner.search`).

Options are checked by constructing the object once at validation time, so a
misspelt option is a spec error rather than a crash in the middle of a study.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tuner.spec._dims import SpecModel, fail

#: Spec names to Optuna's classes (in ``optuna.samplers`` / ``optuna.pruners``).
SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
}
PRUNERS: dict[str, str] = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "hyperband": "HyperbandPruner",
    "percentile": "PercentilePruner",
    "wilcoxon": "WilcoxonPruner",
}
PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {"percentile": {"percentile": 25.0}}


def optuna_class(kind: Literal["samplers", "pruners"], name: str) -> Callable[..., Any]:
    """Optuna's sampler or pruner class for a spec name.

    Optuna is imported here, when a spec is validated, not when this module is: a client
    that only reads and sends definitions never loads it.
    """
    table = SAMPLERS if kind == "samplers" else PRUNERS
    module = importlib.import_module(f"optuna.{kind}")
    cls: Callable[..., Any] = getattr(module, table[name])
    return cls


class SamplerHistory(SpecModel):
    """The finished trials a sampler learns from when a worker asks in memory (TPE): the
    ``best`` complete ones, then the most recent others, ``best + recent`` in all.

    TPE's cost per ask grows with the trials it reads; with the window it stays that of
    ``best + recent`` trials. Its model of good configurations is unchanged while ``best``
    is at least 25 (TPE takes at most the 25 best as good); its model of the rest is drawn
    from the best others and the most recent ``recent``. Studies with fewer finished
    trials than ``best + recent`` are sampled exactly as without the window. ``all``
    (or null) turns the window off.
    """

    best: int = Field(100, ge=1, description="the best complete trials, always seen")
    recent: int = Field(400, ge=1, description="the most recent other trials seen")


class SamplerConfig(SpecModel):
    name: str
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="defaults to the study's seed")
    options: dict[str, Any] = Field(default_factory=dict)
    history: SamplerHistory | Literal["all"] = Field(
        default_factory=SamplerHistory,
        description="the trials TPE learns from when asked in memory; all: every trial",
    )

    @field_validator("history", mode="before")
    @classmethod
    def _null_is_all(cls, value: Any) -> Any:
        return "all" if value is None else value

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.name not in SAMPLERS:
            raise fail(("name",), f"unknown sampler {self.name!r}; one of {', '.join(SAMPLERS)}")
        startup = self.options.get("n_startup_trials", 10)
        history = self.history
        seen = None if history == "all" else history.best + history.recent
        if self.name == "tpe" and seen is not None and isinstance(startup, int) and seen < startup:
            message = f"history shows {seen} trials, fewer than n_startup_trials ({startup})"
            raise fail(("history",), message + ": TPE would never leave its random start")
        if self.name != "grid":  # grid needs the search space, checked against it later
            try:
                optuna_class("samplers", self.name)(**self.options)
            except (TypeError, ValueError) as exc:
                message = f"{self.name} sampler rejects these options: {exc}"
                raise fail(("options",), message) from None
        return self


class PrunerConfig(SpecModel):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PrunerConfig:
        if self.name not in PRUNERS:
            raise fail(("name",), f"unknown pruner {self.name!r}; one of {', '.join(PRUNERS)}")
        try:
            options = {**PRUNER_DEFAULTS.get(self.name, {}), **self.options}
            optuna_class("pruners", self.name)(**options)
        except (TypeError, ValueError) as exc:
            raise fail(("options",), f"{self.name} pruner rejects these options: {exc}") from None
        return self

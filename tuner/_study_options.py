"""Samplers and pruners: spec names to Optuna objects.

Options are checked by constructing the object once at validation time, so a
misspelt option is a spec error rather than a crash in the middle of a study.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuner._dims import fail

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
}
_PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {"percentile": {"percentile": 25.0}}


class SamplerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    seed: int | None = Field(None, ge=0, description="defaults to the study's seed")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.name not in SAMPLERS:
            raise fail(("name",), f"unknown sampler {self.name!r}; one of {', '.join(SAMPLERS)}")
        if self.name != "grid":  # grid needs the search space, checked against it later
            try:
                SAMPLERS[self.name](**self.options)
            except (TypeError, ValueError) as exc:
                message = f"{self.name} sampler rejects these options: {exc}"
                raise fail(("options",), message) from None
        return self


class PrunerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PrunerConfig:
        if self.name not in PRUNERS:
            raise fail(("name",), f"unknown pruner {self.name!r}; one of {', '.join(PRUNERS)}")
        try:
            make_pruner(self)
        except (TypeError, ValueError) as exc:
            raise fail(("options",), f"{self.name} pruner rejects these options: {exc}") from None
        return self


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    options = {**_PRUNER_DEFAULTS.get(config.name, {}), **config.options}
    return PRUNERS[config.name](**options)


def make_sampler(
    config: SamplerConfig, *, seed: int, grid: dict[str, list[Any]], stream: int = 0
) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded by the config's seed, else the study's, and ``stream``.

    Workers sharing one history pass distinct streams (one per claim), so they do not all
    propose the same start-up points. Grid and QMC keep one seed: the grid's order (its
    grid ids) and the low-discrepancy sequence must be the same in every worker.
    """
    base = config.seed if config.seed is not None else seed
    seed = base if config.name in ("grid", "qmc") else base * 1_000_003 + stream
    if config.name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed, **config.options)
    return SAMPLERS[config.name](seed=seed, **config.options)

"""The spec's sampler and pruner, built as Optuna objects."""

from __future__ import annotations

from typing import Any

import optuna

from tuner.spec import PRUNER_DEFAULTS, PrunerConfig, SamplerConfig, optuna_class


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    options = {**PRUNER_DEFAULTS.get(config.name, {}), **config.options}
    pruner: optuna.pruners.BasePruner = optuna_class("pruners", config.name)(**options)
    return pruner


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
    sampler: optuna.samplers.BaseSampler = optuna_class("samplers", config.name)(
        seed=seed, **config.options
    )
    return sampler

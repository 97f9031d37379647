"""Sampling: the spec's search space asked of Optuna, one trial's concrete configuration."""

from tuner.search._history import history_window
from tuner.search._params import TrialParams, suggest
from tuner.search._samplers import make_pruner, make_sampler

__all__ = ["TrialParams", "history_window", "make_pruner", "make_sampler", "suggest"]

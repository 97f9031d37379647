"""Seed variance: how much of a configuration's spread across replicates comes from the init
seed, how much from the data order, and the rest (two-way ANOVA on a crossed design).

Pure Python (no numpy): the client, the service and the report can all use it.
"""

from tuner.variance._anova import SeedVariance, Source, pool, two_way_anova
from tuner.variance._cells import Cell, by_initializer, seed_table, seed_variance

__all__ = [
    "Cell",
    "SeedVariance",
    "Source",
    "by_initializer",
    "pool",
    "seed_table",
    "seed_variance",
    "two_way_anova",
]

"""Replicate rows as a table of init seeds x data-order seeds, and decompositions of trials.

A replicate row carries its init seed and its data-order seed, which identify its cell: rows
are the distinct init seeds in the order they first appear, columns the distinct data-order
seeds. Replicates whose seeds varied together (``replicates: k``) fill only a diagonal, and
form no table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from tuner.variance._anova import SeedVariance, pool


class Cell(Protocol):
    """What a replicate row gives: its two seeds and its value."""

    @property
    def init_seed(self) -> int: ...

    @property
    def data_seed(self) -> int: ...

    @property
    def value(self) -> float | None: ...


def seed_table(cells: Sequence[Cell]) -> list[list[float]] | None:
    """The values as an init x data table, or None unless the replicates cross at least 2 init
    seeds with at least 2 data-order seeds, every pair exactly once, each with a finite value."""
    inits = list(dict.fromkeys(c.init_seed for c in cells))
    datas = list(dict.fromkeys(c.data_seed for c in cells))
    if len(inits) < 2 or len(datas) < 2 or len(cells) != len(inits) * len(datas):
        return None
    found = {(c.init_seed, c.data_seed): c.value for c in cells}
    if len(found) != len(cells):  # a pair twice (so another is missing)
        return None
    values = [[found.get((i, d)) for d in datas] for i in inits]
    if any(v is None or not math.isfinite(v) for row in values for v in row):
        return None
    return [[float(v) for v in row if v is not None] for row in values]


def seed_variance(cells: Sequence[Cell]) -> SeedVariance | None:
    """One trial's decomposition, or None when its replicates form no table."""
    table = seed_table(cells)
    return None if table is None else pool([table])


def by_initializer(
    trials: Iterable[tuple[str, Sequence[Cell]]],
) -> list[tuple[str | None, SeedVariance]]:
    """Pooled over every trial that forms a table (label None) and over each initializer's,
    by name; empty when no trial forms one. ``trials``: (initializer, replicates) pairs."""
    tables: dict[str, list[list[list[float]]]] = {}
    for initializer, cells in trials:
        table = seed_table(cells)
        if table is not None:
            tables.setdefault(initializer, []).append(table)
    if not tables:
        return []
    every = [table for name in tables for table in tables[name]]
    return [(None, pool(every)), *((name, pool(tables[name])) for name in sorted(tables))]

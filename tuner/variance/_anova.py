"""Two-way ANOVA without replication on a table of replicate values: one row per init seed,
one column per data-order seed, one value per cell.

For an a x b table y (a, b >= 2) with grand mean m, row means r_i and column means c_j::

    SS_init = b * sum_i (r_i - m)^2              df a - 1
    SS_data = a * sum_j (c_j - m)^2              df b - 1
    SS_res  = sum_ij (y_ij - r_i - c_j + m)^2    df (a - 1)(b - 1)

and the three add up to the total sum of squares about m. With one value per cell the
init x data interaction cannot be told from noise: it is in the residual. Under the
random-effects model y_ij = m + I_i + D_j + e_ij the mean squares (MS = SS / df) have
E[MS_init] = s2_res + b s2_init, E[MS_data] = s2_res + a s2_data and E[MS_res] = s2_res, so

    s2_res = MS_res,  s2_init = (MS_init - MS_res) / b,  s2_data = (MS_data - MS_res) / a,

each truncated at 0 (a negative estimate: no more than the residual explains). A share is a
component over the three components' sum: the part of one replicate's variance it explains.

Over several tables (a study's trials, each with its own mean) the sums of squares and
degrees of freedom add (the pooled ANOVA table), while the components and the shares are the
mean of each table's own, every table counting once (tables without any spread are left out
of the shares). Configurations differ in how much their seeds matter: pooling the mean
squares instead would let one unstable configuration (a seed pair that diverges) set the
residual for all, and wipe out every other table's init and data components.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """One source of variation: its line of the ANOVA table and its variance component."""

    ss: float  # sum of squares
    df: int  # degrees of freedom
    variance: float  # the variance component (>= 0; over tables: the mean of each one's)
    share: float | None  # of the components' sum (over tables: the mean); None without spread

    @property
    def ms(self) -> float:
        """The mean square, SS / df."""
        return self.ss / self.df

    @property
    def std(self) -> float:
        """The component as a standard deviation, in the metric's units."""
        return math.sqrt(self.variance)

    def to_json(self) -> dict[str, Any]:
        fields = ("ss", "df", "ms", "variance", "std", "share")
        return {name: getattr(self, name) for name in fields}


@dataclass(frozen=True)
class SeedVariance:
    """How much of the spread across replicates comes from the init seed, from the data
    order, and from neither (their interaction and everything else)."""

    init: Source
    data: Source
    residual: Source
    n_tables: int  # trials pooled (1: one trial)
    n_values: int  # replicate values in them

    def to_json(self) -> dict[str, Any]:
        return {
            "init": self.init.to_json(),
            "data": self.data.to_json(),
            "residual": self.residual.to_json(),
            "n_tables": self.n_tables,
            "n_values": self.n_values,
        }


@dataclass(frozen=True)
class _Sums:
    """One table's sums of squares and shape."""

    ss_init: float
    ss_data: float
    ss_res: float
    rows: int
    cols: int


def _sums(table: Sequence[Sequence[float]]) -> _Sums:
    rows = len(table)
    cols = len(table[0]) if rows else 0
    if rows < 2 or cols < 2:
        raise ValueError(f"a two-way table needs at least 2 x 2 values, got {rows} x {cols}")
    if any(len(row) != cols for row in table):
        raise ValueError("every row of the table must have the same number of values")
    if not all(math.isfinite(v) for row in table for v in row):
        raise ValueError("every value of the table must be a finite number")
    mean = math.fsum(v for row in table for v in row) / (rows * cols)
    row_means = [math.fsum(row) / cols for row in table]
    col_means = [math.fsum(row[j] for row in table) / rows for j in range(cols)]
    return _Sums(
        ss_init=cols * math.fsum((r - mean) ** 2 for r in row_means),
        ss_data=rows * math.fsum((c - mean) ** 2 for c in col_means),
        ss_res=math.fsum(
            (table[i][j] - row_means[i] - col_means[j] + mean) ** 2
            for i in range(rows)
            for j in range(cols)
        ),
        rows=rows,
        cols=cols,
    )


def _components(table: _Sums) -> tuple[float, float, float]:
    """The (init, data, residual) variance components of one table."""
    var_res = table.ss_res / ((table.rows - 1) * (table.cols - 1))
    var_init = (table.ss_init / (table.rows - 1) - var_res) / table.cols
    var_data = (table.ss_data / (table.cols - 1) - var_res) / table.rows
    return max(0.0, var_init), max(0.0, var_data), var_res


def _mean(rows: Sequence[Sequence[float]]) -> list[float]:
    return [math.fsum(column) / len(rows) for column in zip(*rows, strict=True)]


def pool(tables: Iterable[Sequence[Sequence[float]]]) -> SeedVariance:
    """The decomposition over tables (each at least 2 x 2, finite values): sums of squares
    and degrees of freedom added, components and shares averaged over the tables."""
    sums = [_sums(table) for table in tables]
    if not sums:
        raise ValueError("pooling needs at least one table")
    components = [_components(table) for table in sums]
    variances = _mean(components)
    spread = [[c / math.fsum(row) for c in row] for row in components if math.fsum(row) > 0]
    shares: list[float | None] = list(_mean(spread)) if spread else [None, None, None]
    ss = [math.fsum(getattr(s, f) for s in sums) for f in ("ss_init", "ss_data", "ss_res")]
    df = [
        sum(s.rows - 1 for s in sums),
        sum(s.cols - 1 for s in sums),
        sum((s.rows - 1) * (s.cols - 1) for s in sums),
    ]
    init, data, residual = (Source(ss[i], df[i], variances[i], shares[i]) for i in range(3))
    return SeedVariance(
        init=init,
        data=data,
        residual=residual,
        n_tables=len(sums),
        n_values=sum(s.rows * s.cols for s in sums),
    )


def two_way_anova(table: Sequence[Sequence[float]]) -> SeedVariance:
    """The decomposition of one table: rows are init seeds, columns data-order seeds."""
    return pool([table])

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

each truncated at 0 (a negative estimate: no more than the residual explains). A share is one
component over the three components' sum: the part of one replicate's variance it explains.

Pooled over tables (a study's trials, each with its own mean), sums of squares and degrees of
freedom add, and the components solve the summed expectations:
s2_init = (sum SS_init - s2_res * sum df_init) / sum(df_init * b). For tables of one shape that
is the single-table formula on the pooled mean squares.
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
    variance: float  # the variance component (>= 0)
    share: float | None  # of the three components' sum; None when all three are 0

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


def pool(tables: Iterable[Sequence[Sequence[float]]]) -> SeedVariance:
    """The decomposition pooled over tables (each at least 2 x 2, finite values)."""
    sums = [_sums(table) for table in tables]
    if not sums:
        raise ValueError("pooling needs at least one table")
    df_init = sum(s.rows - 1 for s in sums)
    df_data = sum(s.cols - 1 for s in sums)
    df_res = sum((s.rows - 1) * (s.cols - 1) for s in sums)
    ss_init = math.fsum(s.ss_init for s in sums)
    ss_data = math.fsum(s.ss_data for s in sums)
    ss_res = math.fsum(s.ss_res for s in sums)
    var_res = ss_res / df_res
    var_init = (ss_init - var_res * df_init) / sum((s.rows - 1) * s.cols for s in sums)
    var_data = (ss_data - var_res * df_data) / sum((s.cols - 1) * s.rows for s in sums)
    var_init, var_data = max(0.0, var_init), max(0.0, var_data)
    total = var_init + var_data + var_res

    def source(ss: float, df: int, variance: float) -> Source:
        return Source(ss, df, variance, variance / total if total > 0 else None)

    return SeedVariance(
        init=source(ss_init, df_init, var_init),
        data=source(ss_data, df_data, var_data),
        residual=source(ss_res, df_res, var_res),
        n_tables=len(sums),
        n_values=sum(s.rows * s.cols for s in sums),
    )


def two_way_anova(table: Sequence[Sequence[float]]) -> SeedVariance:
    """The decomposition of one table: rows are init seeds, columns data-order seeds."""
    return pool([table])

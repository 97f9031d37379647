"""The report's seed-variance section: its explanation, and its two tables as plain rows."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.variance import SeedVariance

NOTE = (
    "With replicates: {init: a, data: b} every trial trains each of a init seeds with each of "
    "b data orders. A two-way ANOVA without replication on each trial's a x b table of values "
    "(Dodge et al. 2020) splits their spread into the init seed (rows), the data order "
    "(columns) and the residual (their interaction and the rest), pooled over complete "
    "trials. Each component is a variance (a negative estimate is set to 0), shown as a std "
    "in the metric's units; a share is its part of one replicate's variance."
)
MISSING = (
    "No complete trial has a crossed seed design: set replicates: {init: a, data: b} "
    "(a, b >= 2) to split the spread across seeds into init seed and data order."
)

Rows = tuple[list[str], list[tuple[object, ...]]]


def _share(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def seed_tables(groups: Sequence[tuple[str | None, SeedVariance]]) -> list[Rows]:
    """(head, rows) of the per-initializer table, then of the pooled ANOVA table."""
    if not groups:
        return []
    head = ["initializer", "trials", "values", "init std", "data std", "residual std"]
    head += ["init share", "data share", "residual share"]
    rows: list[tuple[object, ...]] = []
    for label, found in groups:
        sources = (found.init, found.data, found.residual)
        rows.append(
            (
                label or "every trial",
                found.n_tables,
                found.n_values,
                *(f"{s.std:.3g}" for s in sources),
                *(_share(s.share) for s in sources),
            )
        )
    _, every = groups[0]
    anova_head = ["source (every trial)", "sum of squares", "df", "mean square", "variance"]
    anova_head.append("share")
    lines = [("init seed", every.init), ("data order", every.data), ("residual", every.residual)]
    anova: list[tuple[object, ...]] = [
        (name, f"{s.ss:.4g}", s.df, f"{s.ms:.4g}", f"{s.variance:.4g}", _share(s.share))
        for name, s in lines
    ]
    return [(head, rows), (anova_head, anova)]

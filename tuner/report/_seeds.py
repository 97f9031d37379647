"""The report's seed-variance section: its explanation, and its tables as plain rows."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.report._data import ReportData
from tuner.variance import SeedVariance, Source

NOTE = (
    "With replicates: {init: a, data: b} every trial trains each of a init seeds with each of "
    "b data orders. A two-way ANOVA without replication on each trial's a x b table of values "
    "(Dodge et al. 2020) splits their spread into the init seed (rows), the data order "
    "(columns) and the residual (their interaction and the rest). A component is a variance "
    "(a negative estimate is set to 0), shown as a std in the metric's units; a share is its "
    "part of the trial's replicate variance. Over several trials the sums of squares and "
    "degrees of freedom add up, and components and shares are each trial's, averaged (every "
    "trial counts once)."
)
MISSING = (
    "No complete trial has a crossed seed design: set replicates: {init: a, data: b} "
    "(a, b >= 2) to split the spread across seeds into init seed and data order."
)
#: A table: head, rows, and how many leading columns are text (left-aligned).
Rows = tuple[list[str], list[tuple[object, ...]], int]
_SPLIT = ["init std", "data std", "residual std", "init share", "data share", "residual share"]


def _share(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def _split(found: SeedVariance) -> tuple[str, ...]:
    sources = (found.init, found.data, found.residual)
    return (*(f"{s.std:.3g}" for s in sources), *(_share(s.share) for s in sources))


def _anova(found: SeedVariance) -> Rows:
    head = ["source (every trial)", "sum of squares", "df", "mean square"]
    head += ["variance (mean of trials)", "share (mean of trials)"]
    lines: Sequence[tuple[str, Source]] = [
        ("init seed", found.init),
        ("data order", found.data),
        ("residual", found.residual),
    ]
    rows: list[tuple[object, ...]] = [
        (name, f"{s.ss:.4g}", s.df, f"{s.ms:.4g}", f"{s.variance:.4g}", _share(s.share))
        for name, s in lines
    ]
    return head, rows, 1


def seed_tables(data: ReportData, top: int) -> list[Rows]:
    """Per initializer (every trial first), per trial (best first, at most ``top``), and the
    pooled ANOVA table; none without a crossed trial."""
    if not data.seed_variance:
        return []
    groups: list[tuple[object, ...]] = [
        (label or "every trial", found.n_tables, *_split(found))
        for label, found in data.seed_variance
    ]
    trials: list[tuple[object, ...]] = [
        (r.trial_number, r.initializer, f"{r.value:.4f}", *_split(found))
        for r in data.rows
        if r.value is not None and (found := data.trial_seed_variance.get(r.trial_number))
    ]
    return [
        (["initializer", "trials", *_SPLIT], groups, 1),
        (["trial", "initializer", data.metric, *_SPLIT], trials[:top], 2),
        _anova(data.seed_variance[0][1]),
    ]

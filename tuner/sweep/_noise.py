"""Seed noise for the regression gate: how much one replicate's value moves with its seeds.

The noise is the sample standard deviation (n - 1 in the denominator) of the best trial's
replicate values, each at the epoch the trial was judged at; the best value is their mean.
It measures the configuration being compared, under the study's own replicate design (seed
pairs, or every init seed crossed with every data order). The standard error of the mean of
n replicates is std / sqrt(n): K = 1 already allows sqrt(n) standard errors.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedNoise:
    """The spread of the best trial's replicate values."""

    trial: int
    n: int  # replicate values with a finite value
    std: float  # sample standard deviation (n - 1)

    def describe(self, k: float) -> str:
        return (
            f"{k:g} x seed std {self.std:.4g} (of trial {self.trial}'s {self.n} replicates) "
            f"= {k * self.std:.4g}"
        )


def seed_noise(trial: int, values: Sequence[float | None]) -> SeedNoise | None:
    """The noise of trial ``trial``'s replicate values; None with fewer than 2 finite ones."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return None
    return SeedNoise(trial, len(finite), statistics.stdev(finite))

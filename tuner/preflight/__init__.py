"""Preflight: seeded checks of a study before it spends its budget (``tuner check``)."""

from tuner.preflight._checks import LR_DECADES
from tuner.preflight._preflight import (
    InitializerCheck,
    PreflightReport,
    middle,
    prune_initializers,
    run_preflight,
)

__all__ = [
    "LR_DECADES",
    "InitializerCheck",
    "PreflightReport",
    "middle",
    "prune_initializers",
    "run_preflight",
]

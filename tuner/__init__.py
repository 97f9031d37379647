"""Hyperparameter tuning for PyTorch with weight initialization as a searched dimension.

The package is layered (see ARCHITECTURE.md), each subpackage's ``__init__`` naming its
public API: :mod:`tuner.spec` (study definitions; no torch) and :mod:`tuner.client` (the
REST client; no torch), then the engine: :mod:`tuner.search`, :mod:`tuner.inits`,
:mod:`tuner.tasks`, :mod:`tuner.training`, :mod:`tuner.population`, :mod:`tuner.worker`,
:mod:`tuner.studies`, and the features :mod:`tuner.report`, :mod:`tuner.preflight`,
:mod:`tuner.sweep`, under the command line :mod:`tuner.cli`.

Importing ``tuner`` loads only the errors, so ``import tuner.client`` stays light.
"""

from __future__ import annotations

from tuner.errors import (
    InitializerError,
    SpecError,
    SpecIssue,
    StudyStateError,
    TaskError,
    TunerError,
)

__version__ = "0.3.0"  # the package's version (pyproject reads it from here)

__all__ = [
    "InitializerError",
    "SpecError",
    "SpecIssue",
    "StudyStateError",
    "TaskError",
    "TunerError",
    "__version__",
]

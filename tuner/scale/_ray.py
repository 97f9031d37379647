"""Ray, imported when a pool starts and never before: it is the optional ``ray`` extra."""

from __future__ import annotations

from typing import Any

from tuner.errors import TunerError

#: How to install what ``tuner worker --ray`` needs.
RAY_EXTRA = "pip install 'init-tuner[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`TunerError` that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise TunerError(f"workers on Ray need Ray ({exc}): {RAY_EXTRA}") from None
    return ray

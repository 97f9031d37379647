"""Task plugins by name: the ``tuner.tasks`` entry points installed here.

Only names are read (no plugin is imported), so a spec can name a plugin and be checked
without loading it; :func:`tuner.tasks.build_task` loads the one a study uses.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "tuner.tasks"


def installed_plugins() -> dict[str, EntryPoint]:
    """The installed task plugins by name (entry points, not yet loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

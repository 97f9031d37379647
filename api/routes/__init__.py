"""The API's routers: studies and their trials under /v1, workers, and the ops endpoints.

No ``from __future__ import annotations`` in these modules: FastAPI reads parameter
annotations at definition time, and a string annotation naming an ``Annotated`` alias that is
not a module global (e.g. one defined in a function) silently turns a dependency into a query
parameter. Module-level aliases work either way; plain annotations keep it obvious.
"""

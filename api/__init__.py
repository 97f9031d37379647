"""The HTTP face of the service: a FastAPI app factory over :mod:`tuner` and :mod:`storage`."""

from api._app import API_PREFIX, create_app
from api.config import Settings, get_settings

__all__ = ["API_PREFIX", "Settings", "create_app", "get_settings"]

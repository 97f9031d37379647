"""The HTTP face of the service: a FastAPI app factory over :mod:`tuner` and :mod:`storage`."""

from api._app import create_app

__all__ = ["create_app"]

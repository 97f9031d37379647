"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI

import tuner


def create_app() -> FastAPI:
    """A fresh application; routes live in their own modules as they are added."""
    app = FastAPI(
        title="init-tuner",
        summary="Hyperparameter tuning with weight initialization as a search dimension",
        version="0.1.0",
    )

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, object]:
        """Liveness: the process is up and the engine imports."""
        return {"status": "ok", "initializers": len(tuner.INITIALIZERS)}

    return app

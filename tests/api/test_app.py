"""The app factory."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api import create_app


def test_healthz_and_openapi() -> None:
    client = TestClient(create_app())
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["initializers"] >= 19
    assert "/healthz" in client.get("/openapi.json").json()["paths"]

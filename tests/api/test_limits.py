"""A request body may not be arbitrarily large: 413 before the server reads or parses it."""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi.testclient import TestClient

from tests.api.api_helpers import ADMIN, TOKENS, make_client, small_spec


def test_a_body_over_the_limit_is_413_and_nothing_is_written(sqlite_url: str) -> None:
    with make_client(sqlite_url, TOKENS, max_body_bytes=64 * 1024) as client:
        _refused(client)


def _refused(client: TestClient) -> None:
    headers = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
    spec = small_spec("huge")
    spec["search"] = {"initializer": ["xavier_uniform"] * 20000}  # ~400 KB of entries
    body = json.dumps(spec)
    assert len(body) > 64 * 1024
    response = client.post("/v1/studies", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert "64,000" not in response.text and "65,536 bytes" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192].encode()

    streamed = client.post("/v1/studies", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text
    listing = client.get("/v1/studies", headers=headers)
    assert listing.json()["total"] == 0


def test_a_body_under_the_limit_is_served(client: TestClient) -> None:
    response = client.post("/v1/studies", json=small_spec("small"))
    assert response.status_code == 201, response.text

"""POST /v1/preflight: admin only, 422 with field paths, the report's shape, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.api_helpers import ADMIN, READ, TOKENS, make_client, small_spec

DEEP = small_spec(
    "deep",
    task={"model": "mlp", "hidden": [32] * 8, "dataset": "digits"},
    search={"initializer": ["kaiming_normal", {"name": "normal", "std": 1e-4}]},
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_preflight_needs_an_admin_token_and_writes_nothing(sqlite_url: str) -> None:
    with make_client(sqlite_url, TOKENS) as client:
        assert client.post("/v1/preflight", json=DEEP).status_code == 401
        assert client.post("/v1/preflight", json=DEEP, headers=bearer(READ)).status_code == 403
        response = client.post(
            "/v1/preflight", json=DEEP, params={"prune_inits": True}, headers=bearer(ADMIN)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert client.get("/v1/studies", headers=bearer(READ)).json()["total"] == 0
    assert body["verdict"] == "problems" and body["spec_name"] == "deep"
    assert body["device"] == "cpu" and body["reference_initializer"] == "kaiming_normal"
    assert body["overfit"]["status"] == "pass"
    assert body["lr_test"]["status"] == "pass" and len(body["lr_test"]["decades"]) == 7
    assert set(body["lr_test"]["proposed_lr"]) == {"low", "high", "log"}
    assert body["generalization"]["status"] == "pass"
    normal = body["initializers"][1]
    assert normal["label"] == "normal" and normal["params"] == {"std": 1e-4}
    assert len(normal["layers"]) == 9 and normal["layers"][0]["kind"] == "Linear"
    assert normal["problems"][0].startswith("vanishing signal")
    # the signal propagation beside the layers: a ReLU net's Jacobian, no mean field
    assert normal["signal"]["jacobian_samples"] == 32 and normal["signal"]["chi_1"] is None
    assert "ReLU" in normal["signal"]["mean_field_skipped"]
    assert body["problems"] == [f"initializer normal: {normal['problems'][0]}"]
    assert body["pruned"] == ["normal"]
    assert body["pruned_spec"]["search"]["initializer"] == [{"name": "kaiming_normal"}]


def test_a_healthy_definition_is_ok_and_unpruned(sqlite_client: TestClient) -> None:
    response = sqlite_client.post("/v1/preflight", json=small_spec("fine"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "ok" and body["problems"] == []
    assert body["pruned"] == [] and body["pruned_spec"] is None


INVALID: list[tuple[dict[str, Any], list[Any]]] = [
    ({"search": {"initializer": ["xavier_uniform", "nope"]}}, ["search", "initializer", 1, "name"]),
    (
        {"task": {"dataset": {"path": "/etc/passwd.csv", "target": "y"}}},
        ["task", "dataset", "path"],
    ),
    # found once the task is built: the plugin's model has no conv layer for dirac
    (
        {
            "task": {"plugin": "tiny-tanh", "dataset": "digits"},
            "search": {"initializer": ["dirac"]},
        },
        ["search", "initializer", 0],
    ),
    ({"task": {"plugin": "tiny-tanh", "dataset": "digits", "bogus": 1}}, ["task"]),
]


@pytest.mark.parametrize(("change", "loc"), INVALID)
def test_an_invalid_definition_is_422_with_its_field_path(
    sqlite_client: TestClient, change: dict[str, Any], loc: list[Any]
) -> None:
    response = sqlite_client.post("/v1/preflight", json={**small_spec("bad"), **change})
    assert response.status_code == 422, response.text
    assert [issue["loc"] for issue in response.json()["detail"]] == [["body", *loc]]


def test_data_files_inside_the_data_folder_are_accepted(sqlite_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    np.savez(tmp_path / "blobs.npz", x=x, y=(x[:, 0] > 0).astype(int))
    spec = small_spec(
        "file", task={"model": "mlp", "hidden": [8], "dataset": {"path": "blobs.npz"}}
    )
    with make_client(sqlite_url, data_dir=tmp_path) as client:
        response = client.post("/v1/preflight", json=spec)
    assert response.status_code == 200, response.text
    assert response.json()["generalization"]["status"] == "pass"

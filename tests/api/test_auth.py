"""Bearer tokens: every route with no token, a read token and an admin token; the dashboard."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.api_helpers import (
    ADMIN,
    READ,
    TOKENS,
    add_results,
    add_study,
    make_client,
    result,
    small_spec,
)

_names = itertools.count()

#: (method, path, JSON body or None, status for an admin, needs admin?)
ROUTES: list[tuple[str, str, Any, int, bool]] = [
    ("GET", "/v1/studies", None, 200, False),
    ("POST", "/v1/studies", "new-study", 201, True),
    ("GET", "/v1/studies/s1", None, 200, False),
    ("POST", "/v1/studies/c1/cancel", None, 202, True),
    ("GET", "/v1/studies/s1/trials", None, 200, False),
    ("GET", "/v1/studies/s1/trials/0", None, 200, False),
    ("GET", "/v1/studies/s1/best", None, 200, False),
    ("GET", "/v1/studies/s1/summary", None, 200, False),
    ("GET", "/v1/studies/s1/report", None, 200, False),
    ("GET", "/v1/workers", None, 200, False),
    ("POST", "/v1/preflight", small_spec("pf"), 200, True),
    ("GET", "/metrics", None, 200, False),
]
OPEN_ROUTES = ["/healthz", "/readyz"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app with an admin and a read token, on a SQLite file with a study and a trial."""
    url = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'tuner.db'}"
    with make_client(url, TOKENS) as client:
        add_study(client, "s1")
        add_study(client, "c1")
        add_results(client, [result("s1", 0, value=0.8)])
        yield client


def call(client: TestClient, method: str, path: str, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body == "new-study":
        body = small_spec(f"new-{next(_names)}")
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "ok", "admin_only"), ROUTES)
def test_no_token_is_401(
    guarded: TestClient, method: str, path: str, body: Any, ok: int, admin_only: bool
) -> None:
    response = call(guarded, method, path, body, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "an API token is required"
    wrong = call(guarded, method, path, body, "guess")
    assert wrong.status_code == 401 and wrong.json()["detail"] == "the API token is not valid"


@pytest.mark.parametrize(("method", "path", "body", "ok", "admin_only"), ROUTES)
def test_read_token_may_only_read(
    guarded: TestClient, method: str, path: str, body: Any, ok: int, admin_only: bool
) -> None:
    response = call(guarded, method, path, body, READ)
    assert response.status_code == (403 if admin_only else ok), response.text


@pytest.mark.parametrize(("method", "path", "body", "ok", "admin_only"), ROUTES)
def test_admin_token_may_do_everything(
    guarded: TestClient, method: str, path: str, body: Any, ok: int, admin_only: bool
) -> None:
    assert call(guarded, method, path, body, ADMIN).status_code == ok


@pytest.mark.parametrize("path", OPEN_ROUTES)
def test_health_and_readiness_are_open(guarded: TestClient, path: str) -> None:
    assert guarded.get(path).status_code == 200


def test_the_table_covers_every_route(guarded: TestClient) -> None:
    paths = guarded.get("/openapi.json").json()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    tested = {(m, p.replace("s1/trials/0", "{name}/trials/{number}")) for m, p, *_ in ROUTES}
    tested = {(m, p.replace("/s1", "/{name}").replace("/c1", "/{name}")) for m, p in tested}
    assert documented == tested | {("GET", p) for p in OPEN_ROUTES}


def test_other_schemes_and_the_cookie_do_not_open_the_api(guarded: TestClient) -> None:
    basic = guarded.get("/v1/studies", headers={"Authorization": f"Basic {ADMIN}"})
    assert basic.status_code == 401
    cookie = guarded.get("/v1/studies", headers={"Cookie": f"tuner_token={ADMIN}"})
    assert cookie.status_code == 401


def test_no_tokens_means_no_auth(sqlite_client: TestClient) -> None:
    assert sqlite_client.get("/v1/studies").status_code == 200
    assert sqlite_client.post("/v1/studies", json=small_spec("open")).status_code == 201


# --- the Optuna dashboard, mounted on the same database ------------------------------------


def test_dashboard_reads_the_same_database(client: TestClient) -> None:
    assert client.post("/v1/studies", json=small_spec("shared")).status_code == 201
    studies = client.get("/api/studies")
    assert studies.status_code == 200
    assert [s["study_name"] for s in studies.json()["study_summaries"]] == ["shared"]
    page = client.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/nowhere").status_code == 404


def test_deleting_a_study_from_the_dashboard_is_refused(client: TestClient) -> None:
    """Optuna's rows alone would go, leaving the tuner's runs and results orphaned (and
    workers meeting a study that does not exist): refused, nothing half-deleted."""
    assert client.post("/v1/studies", json=small_spec("kept")).status_code == 201
    (summary,) = client.get("/api/studies").json()["study_summaries"]
    refused = client.delete(f"/api/studies/{summary['study_id']}")
    assert refused.status_code == 405 and "delete studies with the tuner" in refused.text
    assert [s["study_name"] for s in client.get("/api/studies").json()["study_summaries"]] == [
        "kept"
    ]
    assert client.get("/v1/studies/kept").status_code == 200


def test_dashboard_needs_a_token_and_writes_need_admin(guarded: TestClient) -> None:
    assert guarded.get("/api/studies").status_code == 401
    assert guarded.get("/dashboard").status_code == 401
    read = {"Authorization": f"Bearer {READ}"}
    listed = guarded.get("/api/studies", headers=read)
    assert listed.status_code == 200 and "study_summaries" in listed.json()
    new = {"study_name": "from-dashboard", "directions": ["maximize"]}
    refused = guarded.post("/api/studies", json=new, headers=read)
    assert refused.status_code == 403
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert guarded.post("/api/studies", json=new, headers=admin).status_code == 201
    assert guarded.delete("/api/studies/999", headers=read).status_code == 403


def test_dashboard_cookie_login(guarded: TestClient) -> None:
    bad = guarded.get("/dashboard", params={"token": "guess"}, follow_redirects=False)
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    login = guarded.get("/dashboard", params={"token": READ}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/dashboard"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"tuner_token={READ};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    browser = {"Cookie": f"tuner_token={READ}"}
    assert guarded.get("/dashboard", headers=browser).status_code == 200
    assert guarded.get("/api/studies", headers=browser).status_code == 200
    new = {"study_name": "cookie-write", "directions": ["maximize"]}
    assert guarded.post("/api/studies", json=new, headers=browser).status_code == 403
    guarded.cookies.clear()

"""The published API is the real one: requests generated from the OpenAPI schema (valid and
invalid, over every operation) never answer 5xx, and every answer conforms to the schema
(status codes, content types, bodies, headers). The schema's path parameters are given, as
examples, a study that exists with finished trials, so the per-study routes are reached
with real data, not only with their 404s. Then the schema's links are followed: a study
created from the documented example body, and each operation its 201 links to, called
with the parameters the link takes from that response (the rest generated)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import storage
from api import Settings, create_app
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.worker import Worker, WorkerConfig

ADMIN = "fuzz-admin"
STUDY = "fuzzed"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
REACHED: list[tuple[str, int]] = []  # (path, status) of every generated call


URL = f"sqlite:///{Path(tempfile.mkdtemp(prefix='tuner-fuzz-')) / 'fuzz.db'}"


def _app() -> Any:
    url = URL
    spec = {
        "name": STUDY,
        "task": {"model": "mlp", "hidden": [8], "dataset": "digits"},
        "search": {"lr": 0.1},
        "budget": {"n_trials": 2, "max_epochs": 1},
    }
    run_study(parse_spec(spec), database_url=url, device="cpu")
    app = create_app(Settings(database_url=url, dashboard=False, api_tokens=f"admin:{ADMIN}"))
    published = app.openapi()
    for item in published["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path":  # the study above, and its trial 0
                    param["example"] = STUDY if param["name"] == "name" else 0
    app.openapi_schema = published
    return app


APP = _app()
PUBLISHED: dict[str, Any] = APP.openapi()
AUTH = {"Authorization": f"Bearer {ADMIN}"}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    response = case.call(headers=AUTH)
    REACHED.append((case.operation.path, response.status_code))
    case.validate_response(response, checks=CHECKS)


def test_the_per_study_routes_were_reached_with_a_study() -> None:
    """Runs after the generated cases (pytest keeps a module's order)."""
    found = {path for path, status in REACHED if status < 400 and "{name}" in path}
    assert found >= {
        "/v1/studies/{name}",
        "/v1/studies/{name}/trials",
        "/v1/studies/{name}/trials/{number}",
        "/v1/studies/{name}/best",
        "/v1/studies/{name}/summary",
        "/v1/studies/{name}/report",
    }, sorted(set(REACHED))


def _operation(operation_id: str) -> Any:
    """The schema's operation with this operationId."""
    for path, item in PUBLISHED["paths"].items():
        for method, operation in item.items():
            if operation.get("operationId") == operation_id:
                return schema[path][method.upper()]
    raise AssertionError(f"no operation {operation_id}")


def _resolve(expression: str, body: Mapping[str, Any]) -> Any:
    """A link's runtime expression (only ``$response.body#/<pointer>`` is used here)."""
    prefix = "$response.body#/"
    assert expression.startswith(prefix), expression
    value: Any = body
    for part in expression.removeprefix(prefix).split("/"):
        value = value[part]
    return value


CREATE = PUBLISHED["paths"]["/v1/studies"]["post"]
LINKS: dict[str, Any] = CREATE["responses"]["201"]["links"]
LINKED: list[tuple[str, str, int]] = []  # (path, method, status) of every linked call


def _link_targets() -> list[str]:
    return [link["operationId"] for link in LINKS.values()]


@pytest.fixture(scope="module")
def created() -> dict[str, Any]:
    """A study created from the documented example body (the links' source response), then
    trained by a worker, so the routes it links to answer with its results."""
    example = CREATE["requestBody"]["content"]["application/json"]["example"]
    case = schema["/v1/studies"]["POST"].Case(
        body={**example, "name": "linked"}, media_type="application/json"
    )
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    db = storage.Database(URL)
    try:
        config = WorkerConfig(device="cpu", studies=["linked"], exit_when_idle=True)
        assert Worker(db, config).run() == body["n_trials"]
    finally:
        db.dispose()
    return body


@given(data=st.data())
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,  # the same calls on every machine
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_links_lead_from_a_created_study_to_its_routes(
    created: dict[str, Any], data: st.DataObject
) -> None:
    for name, link in LINKS.items():  # the cancel link comes last
        case = data.draw(_operation(link["operationId"]).as_strategy(), label=name)
        linked = {k: _resolve(v, created) for k, v in link["parameters"].items()}
        case.path_parameters = {**(case.path_parameters or {}), **linked}
        response = case.call(headers=AUTH)
        LINKED.append((case.operation.path, case.method, response.status_code))
        case.validate_response(response, checks=CHECKS)


def test_every_link_was_followed_to_an_answer_about_the_study() -> None:
    """Runs after the linked calls: no link led to a missing study, and each linked read
    answered 2xx (the cancel answers 409 here: the study had already completed)."""
    targets = {(op.path, op.method.upper()) for op in map(_operation, _link_targets())}
    assert {(path, method) for path, method, _ in LINKED} == targets
    assert not [call for call in LINKED if call[2] == 404], sorted(set(LINKED))
    reads = {path for path, method in targets if method == "GET"}
    answered = {path for path, method, status in LINKED if status < 300}
    assert reads <= answered and len(reads) == 5, sorted(set(LINKED))

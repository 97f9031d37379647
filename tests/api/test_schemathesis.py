"""The published API is the real one: requests generated from the OpenAPI schema (valid and
invalid, over every operation) never answer 5xx, and every answer conforms to the schema
(status codes, content types, bodies, headers). The schema's path parameters are given, as
examples, a study that exists with finished trials, so the per-study routes are reached
with real data, not only with their 404s."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import Settings, create_app
from tuner.spec import parse_spec
from tuner.studies import run_study

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


def _app() -> Any:
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='tuner-fuzz-')) / 'fuzz.db'}"
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


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
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

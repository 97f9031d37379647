"""The published API is the real one: requests generated from the OpenAPI schema (valid and
invalid, over every operation) never answer 5xx, and every answer conforms to the schema
(status codes, content types, bodies, headers)."""

from __future__ import annotations

import tempfile
from pathlib import Path

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

ADMIN = "fuzz-admin"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


_DB = Path(tempfile.mkdtemp(prefix="tuner-fuzz-")) / "fuzz.db"
_SETTINGS = Settings(database_url=f"sqlite:///{_DB}", dashboard=False, api_tokens=f"admin:{ADMIN}")
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SETTINGS))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)

"""The published API is the real one: requests generated from the OpenAPI schema (valid and
invalid, over every operation, and chained through the schema's links) never answer 5xx,
and every answer conforms to the schema (status codes, content types, bodies, headers)."""

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


_Links = schema.as_state_machine()


class _Chained(_Links):  # type: ignore[misc, valid-type]
    """Sequences of calls through the schema's links (create a study, then read it back)."""

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
        return {"headers": {"Authorization": f"Bearer {ADMIN}"}}

    def validate_response(
        self, response: object, case: schemathesis.Case, **kwargs: object
    ) -> None:
        case.validate_response(response, checks=CHECKS)  # type: ignore[arg-type]


TestChainedCalls = _Chained.TestCase
TestChainedCalls.settings = settings(
    max_examples=20, deadline=None, stateful_step_count=6, suppress_health_check=list(HealthCheck)
)

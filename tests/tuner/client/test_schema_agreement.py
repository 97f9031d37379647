"""The client's models and the API's OpenAPI schema must agree, field for field: a field the
API documents that the client would drop (or one the client expects that the API does not
send) fails here, not in a user's script."""

from __future__ import annotations

import inspect

import pytest
from pydantic import BaseModel

import tuner.client as client_face
from api import Settings, create_app

_MODELS = [
    obj for _, obj in inspect.getmembers(client_face, inspect.isclass) if issubclass(obj, BaseModel)
]


@pytest.fixture(scope="module")
def components() -> dict[str, dict[str, object]]:
    app = create_app(Settings(database_url="sqlite://", dashboard=False))
    schemas: dict[str, dict[str, object]] = app.openapi()["components"]["schemas"]
    return schemas


def test_every_client_model_is_an_api_schema() -> None:
    assert {m.__name__ for m in _MODELS} >= {"Study", "Trial", "TrialDetail", "Summary"}


@pytest.mark.parametrize("model", _MODELS, ids=lambda m: m.__name__)
def test_the_client_model_has_exactly_the_api_fields(
    model: type[BaseModel], components: dict[str, dict[str, object]]
) -> None:
    assert model.__name__ in components, f"the API documents no {model.__name__}"
    schema = components[model.__name__]
    api_fields = set(schema.get("properties", {}))  # type: ignore[call-overload]
    client_fields = {f.alias or name for name, f in model.model_fields.items()}
    assert client_fields == api_fields, (
        f"{model.__name__}: only in the API {sorted(api_fields - client_fields)}, "
        f"only in the client {sorted(client_fields - api_fields)}"
    )
    required = set(schema.get("required", []))  # type: ignore[call-overload]
    client_required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
    assert client_required <= required, f"{model.__name__}: the client requires more"

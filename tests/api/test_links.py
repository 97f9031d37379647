"""POST /v1/studies publishes OpenAPI links to every per-study route, by the created name."""

from __future__ import annotations

from api import Settings, create_app


def test_a_created_study_links_to_its_routes() -> None:
    schema = create_app(Settings(database_url="sqlite://", dashboard=False)).openapi()
    links = schema["paths"]["/v1/studies"]["post"]["responses"]["201"]["links"]
    operations = {
        op["operationId"]: path for path, item in schema["paths"].items() for op in item.values()
    }
    targets = {operations[link["operationId"]] for link in links.values()}
    assert targets == {
        "/v1/studies/{name}",
        "/v1/studies/{name}/trials",
        "/v1/studies/{name}/best",
        "/v1/studies/{name}/summary",
        "/v1/studies/{name}/report",
        "/v1/studies/{name}/cancel",
    }
    assert all(link["parameters"] == {"name": "$response.body#/name"} for link in links.values())

"""The OpenAPI document of the REST routes, built from their definitions alone: the route table
(gateway.rest.routes), the request models (gateway.inputs) and the answers' shapes
(gateway.rest.shapes). No schema is written by hand here.

`python -m gateway.rest.openapi > schema/openapi.yaml` regenerates the file (needs PyYAML, one of
the test extras); a test fails when file and code differ. Served at `/openapi.json`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import is_typeddict

from gateway import __version__
from gateway.rest import shapes
from gateway.rest.routes import SPECS

REF = "#/components/schemas/{model}"


class _Untitled(GenerateJsonSchema):
    """Field titles would only repeat the field names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _shape(name: str) -> Any:
    shape = getattr(shapes, name, None)
    if not is_typeddict(shape):
        raise LookupError(f"gateway.rest.shapes defines no shape named {name!r}")
    return shape


@cache  # pydantic takes ~10 ms to make them, and they cannot change while the process runs
def answers() -> dict[str, Any]:
    """The schemas of Error and of every route's answer, and of every shape they hold, made from
    their definitions in gateway.rest.shapes. Shared between calls: read them, never change them."""
    names = ["Error", *sorted({spec.answer for spec in SPECS if spec.answer})]
    _, document = TypeAdapter.json_schemas(
        [(name, "serialization", TypeAdapter(_shape(name))) for name in names],
        ref_template=REF, schema_generator=_Untitled)
    schemas: dict[str, Any] = document["$defs"]
    return schemas


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for spec in SPECS:
        request_schema = spec.model.model_json_schema(ref_template=REF)
        schemas.update(request_schema.pop("$defs", {}))
        schemas[spec.model.__name__] = request_schema
        responses: dict[str, Any] = {
            "400": _error("The body is not what the route takes; the message names the field."),
            "401": _error("No token (when SYSTEM_TOKEN is set)."),
            "403": _error("A wrong token, a disconnected channel, a channel whose page token "
                          "Meta refused (connect the page again), or a browser page on an "
                          "origin that is neither the gateway's own nor in ALLOWED_ORIGINS."),
            "404": _error("An unknown id."),
            "413": _error("The body is larger than MAX_BODY_BYTES."),
            "415": _error("A body that is not sent as Content-Type: application/json."),
            "503": _error("The store is unavailable."),
        }
        if spec.answer:
            responses[str(spec.answer_status)] = {"description": "OK", "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{spec.answer}"}}}}
        else:
            responses[str(spec.empty_status)] = {"description": "Done."}
        if spec.conflict:
            responses["409"] = _error("The subject is not in a state that allows this.")
        if spec.calls_graph:
            responses["502"] = _error("The Graph API could not be reached or failed.")
        paths[spec.path] = {"post": {
            "operationId": spec.path.strip("/").replace(".", "_").replace("-", "_"),
            "summary": spec.summary,
            "requestBody": {"required": True, "content": {spec.media_type: {
                "schema": {"$ref": f"#/components/schemas/{spec.model.__name__}"}}}},
            "responses": dict(sorted(responses.items())),
        }}
    answer_schemas = answers()
    if clash := schemas.keys() & answer_schemas.keys():
        raise ValueError(f"requests and answers both name schemas {sorted(clash)}")
    schemas |= answer_schemas
    return {
        "openapi": "3.1.0",
        "info": {"title": "Messenger Gateway", "version": __version__,
                 "description": "Airy-compatible REST routes of Messenger Gateway."},
        "servers": [{"url": "http://127.0.0.1:8000"}],
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": {
            "systemToken": {"type": "http", "scheme": "bearer"}}},
        "security": [{"systemToken": []}],
        "paths": paths,
    }


def main() -> None:
    import yaml

    print(yaml.safe_dump(build(), sort_keys=False, allow_unicode=True), end="")


if __name__ == "__main__":
    main()

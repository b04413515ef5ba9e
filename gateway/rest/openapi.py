"""The OpenAPI document of the REST routes, built from their request models and route table.

`python -m gateway.rest.openapi > schema/openapi.yaml` regenerates the file (needs PyYAML, one of
the test extras); a test fails when file and code differ. Served at `/openapi.json`.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.domain import TAG_COLORS, WEBHOOK_EVENTS
from gateway.rest.routes import SPECS

NULLABLE_STRING = {"type": ["string", "null"]}
TIME = {"type": "string", "format": "date-time", "example": "2019-02-13T09:39:13.811Z"}

RESPONSES: dict[str, dict[str, Any]] = {
    "Error": {"type": "object", "required": ["message"],
              "properties": {"message": {"type": "string"}}},
    "Channel": {
        "type": "object", "required": ["id", "source", "source_channel_id", "connected", "metadata"],
        "properties": {
            "id": {"type": "string"}, "source": {"type": "string", "enum": ["facebook"]},
            "source_channel_id": {"type": "string", "description": "The Facebook page id."},
            "connected": {"type": "boolean"},
            "metadata": {"type": "object",
                         "required": ["name", "image_url", "token_valid", "user_data"],
                         "properties": {"name": {"type": "string"}, "image_url": NULLABLE_STRING,
                                        "token_valid": {"type": "boolean"},
                                        "user_data": {"type": "object"}}},
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "content", "state", "delivery_state", "sender_type", "from_contact",
                     "sent_at", "source", "metadata", "sender"],
        "properties": {
            "id": {"type": "string"},
            "content": {"description": "Inbound: the whole Messenger event. Outbound: the "
                                       "message object given to messages.send."},
            "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "delivery_state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "sender_type": {"type": "string",
                            "enum": ["source_contact", "source_user", "app_user"]},
            "from_contact": {"type": "boolean"}, "sent_at": TIME,
            "source": {"type": "string", "enum": ["facebook"]},
            "metadata": {"type": "object"},
            "sender": {"type": "object", "properties": {"id": NULLABLE_STRING,
                                                        "name": NULLABLE_STRING,
                                                        "avatar_url": NULLABLE_STRING}},
        },
    },
    "Contact": {"type": "object", "required": ["id", "display_name", "avatar_url", "fetch_state"],
                "properties": {"id": {"type": "string"}, "display_name": {"type": "string"},
                               "avatar_url": NULLABLE_STRING,
                               "fetch_state": {"type": "string",
                                               "enum": ["pending", "ok", "failed"]}}},
    "Conversation": {
        "type": "object",
        "required": ["id", "created_at", "channel", "contact", "metadata", "unread_count",
                     "last_message"],
        "properties": {
            "id": {"type": "string"}, "created_at": TIME,
            "channel": {"$ref": "#/components/schemas/Channel"},
            "contact": {"$ref": "#/components/schemas/Contact"},
            "metadata": {"type": "object"}, "unread_count": {"type": "integer"},
            "last_message": {"anyOf": [{"$ref": "#/components/schemas/Message"},
                                       {"type": "null"}]},
        },
    },
}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data"],
            "properties": {"data": {"type": "array",
                                    "items": {"$ref": f"#/components/schemas/{name}"}}}}


def _page_of(name: str) -> dict[str, Any]:
    page = _list_of(name)
    page["required"].append("pagination_data")
    page["properties"]["pagination_data"] = {
        "type": "object", "required": ["previous_cursor", "next_cursor", "total"],
        "properties": {"previous_cursor": NULLABLE_STRING, "next_cursor": NULLABLE_STRING,
                       "total": {"type": "integer"}}}
    return page


RESPONSES |= {
    "Tag": {"type": "object", "required": ["id", "name", "color"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                           "color": {"type": "string",
                                     "enum": list(TAG_COLORS)}}},
    "FacebookPage": {"type": "object", "required": ["page_id", "name", "image_url", "connected"],
                     "properties": {"page_id": {"type": "string"}, "name": {"type": "string"},
                                    "image_url": NULLABLE_STRING,
                                    "connected": {"type": "boolean"}}},
}
_WEBHOOK = {
    "id": {"type": "string"}, "name": NULLABLE_STRING, "url": {"type": "string"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "events": {"type": "array", "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)}},
    "status": {"type": "string", "enum": ["Subscribed", "Unsubscribed"]},
}
_DELIVERIES = {"last_success_at": {"anyOf": [TIME, {"type": "null"}]}, "last_error": NULLABLE_STRING,
               "last_error_at": {"anyOf": [TIME, {"type": "null"}]}, "queued": {"type": "integer"}}
RESPONSES |= {
    "Webhook": {"type": "object", "required": list(_WEBHOOK), "properties": _WEBHOOK},
    "WebhookInfo": {"type": "object", "required": [*_WEBHOOK, *_DELIVERIES],
                    "properties": {**_WEBHOOK, **_DELIVERIES}},
}
RESPONSES |= {"ChannelList": _list_of("Channel"), "WebhookList": _list_of("WebhookInfo"), "ConversationPage": _page_of("Conversation"),
              "MessagePage": _page_of("Message"), "TagList": _list_of("Tag"),
              "PageList": _list_of("FacebookPage")}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = dict(RESPONSES)
    paths: dict[str, Any] = {}
    for spec in SPECS:
        request_schema = spec.model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(request_schema.pop("$defs", {}))
        schemas[spec.model.__name__] = request_schema
        responses: dict[str, Any] = {
            "400": _error("The body is not what the route takes; the message names the field."),
            "401": _error("No token (when SYSTEM_TOKEN is set)."),
            "403": _error("A wrong token, a disconnected channel, or a browser page on an "
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
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{spec.model.__name__}"}}}},
            "responses": dict(sorted(responses.items())),
        }}
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

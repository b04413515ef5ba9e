"""Request bodies of the REST routes, validated by pydantic so each error names its field."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from gateway.errors import InvalidInput

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=2000)]


class Body(BaseModel):
    # Unknown fields are ignored (Airy clients send more than a route reads); ids may be numbers.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class ConnectFacebook(Body):
    page_id: Id
    page_token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=4096)]
    name: Text | None = None
    image_url: Text | None = None


class ChannelRef(Body):
    channel_id: Id


class ChannelsList(Body):
    source: Id | None = None


class ChannelUpdate(Body):
    channel_id: Id
    name: Text | None = None
    image_url: Text | None = None


class ConversationsList(Body):
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    page_size: int = Field(default=20, ge=1, le=100, strict=True)
    channel_id: Id | None = None


class ConversationRef(Body):
    conversation_id: Id


class UpdateContact(Body):
    conversation_id: Id
    display_name: Text


class ConversationState(Body):
    conversation_id: Id
    state: Annotated[str, StringConstraints(max_length=100)]


class MessageRef(Body):
    message_id: Id


class MessagesList(Body):
    conversation_id: Id
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    page_size: int = Field(default=20, ge=1, le=100, strict=True)


class MessagesSend(Body):
    conversation_id: Id
    message: dict[str, Any]
    messaging_type: Id | None = None
    tag: Id | None = None


def parse(model: type[Body], data: Any) -> Body:
    """Validate `data`; the first problem becomes an `InvalidInput` that names the field."""
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "missing":
            raise InvalidInput(f"{field} is required") from None
        raise InvalidInput(f"{field}: {error['msg']}") from None

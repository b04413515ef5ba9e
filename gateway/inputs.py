"""Every command's input, defined once: the REST routes parse their bodies with these models, and
the GraphQL resolvers parse their arguments with the same ones (field names as in Airy's REST
bodies), so both refuse the same inputs with the same message, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from gateway.domain import DEFAULT_TAG_COLOR, ConversationFilter, TagColor
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


class ConversationFilters(Body):
    """`conversations.list`'s filters (Airy takes a Lucene string here; this is a JSON object)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    channel_ids: Annotated[list[Id], Field(min_length=1, max_length=100)] | None = None
    source: Id | None = None
    state: Annotated[str, StringConstraints(max_length=100)] | None = None
    tag_ids: Annotated[list[Id], Field(min_length=1, max_length=20)] | None = None
    unread: bool | None = Field(default=None, strict=True)
    display_name: Annotated[str, StringConstraints(max_length=200)] | None = None

    def to_domain(self) -> ConversationFilter:
        return ConversationFilter(**self.model_dump())


class ConversationsList(Body):
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    page_size: int = Field(default=20, ge=1, le=100, strict=True)
    channel_id: Id | None = None
    filters: ConversationFilters | None = None

    @field_validator("filters", mode="before")
    @classmethod
    def _no_lucene(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a JSON object such as {\"state\": \"OPEN\", \"unread\": "
                             "true}; Lucene query strings are not supported")
        return value


class ConversationRef(Body):
    conversation_id: Id


class UpdateContact(Body):
    conversation_id: Id
    display_name: Text


class ConversationState(Body):
    conversation_id: Id
    state: Annotated[str, StringConstraints(max_length=100)]


class ConversationTag(Body):
    conversation_id: Id
    tag_id: Id


class MessageRef(Body):
    message_id: Id


class SuggestReplies(Body):
    message_id: Id
    suggestions: dict[str, Any]


class MetadataUpsert(Body):
    subject: Literal["message", "conversation", "channel"]
    id: Id
    data: dict[str, Any]


class ExploreFacebook(Body):
    auth_token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=4096)]


TagName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TagCreate(Body):
    name: TagName
    color: TagColor = DEFAULT_TAG_COLOR


class TagUpdate(Body):
    id: Id
    name: TagName | None = None
    color: TagColor | None = None


class TagRef(Body):
    id: Id


class MessagesList(Body):
    conversation_id: Id
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    page_size: int = Field(default=20, ge=1, le=100, strict=True)


class MessagesSend(Body):
    conversation_id: Id
    message: dict[str, Any]
    messaging_type: Id | None = None
    tag: Id | None = None


class WebhookFields(Body):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    events: Annotated[list[Annotated[str, StringConstraints(max_length=100)]],
                      Field(max_length=10)] | None = None
    headers: dict[str, Annotated[str, StringConstraints(max_length=4000)]] | None = None
    signature_key: Annotated[str, StringConstraints(max_length=500)] | None = None


class WebhookSubscribe(WebhookFields):
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    id: Id | None = None


class WebhookUpdate(WebhookFields):
    id: Id
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                          max_length=2000)] | None = None


class WebhookRef(Body):
    id: Id


B = TypeVar("B", bound=Body)


def parse(model: type[B], data: Any, names: Callable[[str], str] = str) -> B:
    """Validate `data`; the first problem becomes an `InvalidInput` that names the field (as
    `names` calls it: GraphQL's arguments are named in camelCase)."""
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = [str(part) for part in error["loc"]]
        field = ".".join([names(loc[0]), *loc[1:]]) if loc else "body"
        if error["type"] == "missing":
            raise InvalidInput(f"{field} is required") from None
        raise InvalidInput(f"{field}: {error['msg']}") from None

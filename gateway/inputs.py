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
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway import lucene
from gateway.domain import ADDRESS_FIELDS, DEFAULT_TAG_COLOR, ConversationFilter, TagColor
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
    """`conversations.list`'s filters: a JSON object of these fields, or Airy's Lucene query
    string (read by `gateway.lucene` when the filter is made, so that its errors begin as
    Airy's do, "Failed to parse Lucene query:")."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    _lucene: str | None = PrivateAttr(default=None)

    channel_ids: Annotated[list[Id], Field(min_length=1, max_length=100)] | None = None
    source: Id | None = None
    state: Annotated[str, StringConstraints(max_length=100)] | None = None
    tag_ids: Annotated[list[Id], Field(min_length=1, max_length=20)] | None = None
    unread: bool | None = Field(default=None, strict=True)
    display_name: Annotated[str, StringConstraints(max_length=200)] | None = None

    @classmethod
    def of_lucene(cls, query: str) -> ConversationFilters:
        filters = cls()
        filters._lucene = query
        return filters

    def to_domain(self) -> ConversationFilter:
        if self._lucene is not None:
            return lucene.conversation_filter(self._lucene)
        return ConversationFilter(**self.model_dump())


class ConversationsList(Body):
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    page_size: int = Field(default=20, ge=1, le=100, strict=True)
    channel_id: Id | None = None
    filters: ConversationFilters | None = None

    @field_validator("filters", mode="before")
    @classmethod
    def _lucene(cls, value: Any) -> Any:
        return ConversationFilters.of_lucene(value) if isinstance(value, str) else value


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


# --- contacts -------------------------------------------------------------------------------

ContactText = Annotated[str, StringConstraints(max_length=1000)]
ContactKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Via = Annotated[dict[ContactKey, ContactText], Field(max_length=50)]
Address = Annotated[dict[ContactKey, ContactText], Field(max_length=len(ADDRESS_FIELDS))]
ContactConversations = Annotated[dict[Id, Id], Field(max_length=100)]
ContactMetadata = Annotated[dict[ContactKey, Any], Field(max_length=100)]
Removed = Literal[""]  # contacts.update: `""` removes the field


def _no_arrays(value: Any) -> Any:
    """Airy keeps no arrays in a contact's `via` or `metadata`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            raise ValueError("must not hold arrays")
        if isinstance(item, dict):
            stack.extend(item.values())
    return value


def _address_keys(value: Any) -> Any:
    if isinstance(value, dict) and (unknown := sorted(value.keys() - set(ADDRESS_FIELDS))):
        raise ValueError(f"unknown field {unknown[0]!r}; an address has "
                         + ", ".join(ADDRESS_FIELDS))
    return value


class ContactCreate(Body):
    """A contact's fields, as `contacts.create` and each item of `contacts.import` take them."""

    display_name: ContactText | None = None
    avatar_url: ContactText | None = None
    title: ContactText | None = None
    timezone: ContactText | None = None
    gender: ContactText | None = None
    locale: ContactText | None = None
    organization_name: ContactText | None = None
    via: Via | None = None
    address: Address | None = None
    conversations: ContactConversations | None = None
    metadata: ContactMetadata | None = None

    _metadata_arrays = field_validator("metadata")(_no_arrays)
    _address = field_validator("address")(_address_keys)

    @model_validator(mode="after")
    def _not_empty(self) -> ContactCreate:
        if not self.fields():
            raise ValueError("a contact needs at least one field")
        return self

    def fields(self) -> dict[str, Any]:
        """The fields given (a null is not given)."""
        return self.model_dump(exclude_none=True)


class ContactsImport(Body):
    """`contacts.import`: Airy posts the contacts as a bare JSON array, read as `contacts`."""

    contacts: Annotated[list[ContactCreate], Field(min_length=1, max_length=500)]


class ContactsList(Body):
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    page_size: int = Field(default=20, ge=1, le=100, strict=True)


class ContactInfo(Body):
    id: Id | None = None
    conversation_id: Id | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ContactInfo:
        if (self.id is None) == (self.conversation_id is None):
            raise ValueError("give either id or conversation_id")
        return self


class ContactUpdate(Body):
    """`contacts.update`: the fields to change; `""` removes one (in `via`, `address`,
    `conversations` and `metadata`, also one of their keys)."""

    id: Id
    display_name: ContactText | None = None
    avatar_url: ContactText | None = None
    title: ContactText | None = None
    timezone: ContactText | None = None
    gender: ContactText | None = None
    locale: ContactText | None = None
    organization_name: ContactText | None = None
    via: Via | Removed | None = None
    address: Address | Removed | None = None
    conversations: Annotated[dict[Id, ContactText], Field(max_length=100)] | Removed | None = None
    metadata: ContactMetadata | Removed | None = None

    _metadata_arrays = field_validator("metadata")(_no_arrays)
    _address = field_validator("address")(_address_keys)

    def changes(self) -> dict[str, Any]:
        """The fields given (a null is not given), without the id."""
        return self.model_dump(exclude={"id"}, exclude_none=True)


class ContactRef(Body):
    id: Id


class ContactsMerge(Body):
    source_id: Id
    destination_id: Id

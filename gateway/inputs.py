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
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from gateway import lucene
from gateway.domain import ADDRESS_FIELDS, DEFAULT_TAG_COLOR, ConversationFilter, TagColor
from gateway.errors import InvalidInput
from gateway.usecases.senderactions import SenderActionName

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
    # Send even into a thread another app owns (handover protocol): Meta decides.
    force: bool = Field(default=False, strict=True)

# --- sendMessage's typed message (GraphQL): Meta's Send API limits, one Send API shape ---------


MessageText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
TemplateText = Annotated[str, StringConstraints(min_length=1, max_length=640)]
ButtonTitle = Annotated[str, StringConstraints(min_length=1, max_length=20)]  # quick replies too
CardText = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Payload = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
WebUrl = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000,
                                          pattern=r"^https?://\S+$")]


class Typed(BaseModel):
    """Named as GraphQL names the fields (camelCase), so that an error names what the client
    wrote; Meta's names (snake_case) are written by `send_api`."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class OutgoingAttachment(Typed):
    type: Literal["image", "video", "audio", "file"]
    url: WebUrl

    def send_api(self) -> dict[str, Any]:
        return {"type": self.type, "payload": {"url": self.url}}


class OutgoingQuickReply(Typed):
    content_type: Literal["text", "user_phone_number", "user_email"] = "text"
    title: ButtonTitle | None = None
    payload: Payload | None = None
    image_url: WebUrl | None = None

    @model_validator(mode="after")
    def _text_needs_title(self) -> OutgoingQuickReply:
        if self.content_type == "text" and (self.title is None or self.payload is None):
            raise ValueError("a TEXT quick reply needs a title and a payload")
        return self

    def send_api(self) -> dict[str, Any]:
        return _given({"content_type": self.content_type, "title": self.title,
                       "payload": self.payload, "image_url": self.image_url})


class OutgoingQuickReplies(Typed):
    text: MessageText
    replies: Annotated[list[OutgoingQuickReply], Field(min_length=1, max_length=13)]


class OutgoingButton(Typed):
    type: Literal["web_url", "postback", "phone_number"]
    title: ButtonTitle
    url: WebUrl | None = None
    payload: Payload | None = None

    @model_validator(mode="after")
    def _needs_target(self) -> OutgoingButton:
        if self.type == "web_url" and self.url is None:
            raise ValueError("a WEB_URL button needs a url")
        if self.type != "web_url" and self.payload is None:
            raise ValueError(f"a {self.type.upper()} button needs a payload")
        return self

    def send_api(self) -> dict[str, Any]:
        if self.type == "web_url":
            return {"type": self.type, "title": self.title, "url": self.url}
        return {"type": self.type, "title": self.title, "payload": self.payload}


Buttons = Annotated[list[OutgoingButton], Field(min_length=1, max_length=3)]


class OutgoingButtonTemplate(Typed):
    text: TemplateText
    buttons: Buttons


class OutgoingElement(Typed):
    title: CardText
    subtitle: CardText | None = None
    image_url: WebUrl | None = None
    default_action_url: WebUrl | None = None
    buttons: Buttons | None = None

    def send_api(self) -> dict[str, Any]:
        return _given({
            "title": self.title, "subtitle": self.subtitle, "image_url": self.image_url,
            "default_action": {"type": "web_url", "url": self.default_action_url}
            if self.default_action_url else None,
            "buttons": [b.send_api() for b in self.buttons] if self.buttons else None,
        })


class OutgoingGenericTemplate(Typed):
    elements: Annotated[list[OutgoingElement], Field(min_length=1, max_length=10)]


class OutgoingTemplate(Typed):
    button: OutgoingButtonTemplate | None = None
    generic: OutgoingGenericTemplate | None = None

    @model_validator(mode="after")
    def _one(self) -> OutgoingTemplate:
        _exactly_one(self)
        return self

    def send_api(self) -> dict[str, Any]:
        if self.button is not None:
            payload = {"template_type": "button", "text": self.button.text,
                       "buttons": [b.send_api() for b in self.button.buttons]}
        else:
            assert self.generic is not None  # _one
            payload = {"template_type": "generic",
                       "elements": [e.send_api() for e in self.generic.elements]}
        return {"type": "template", "payload": payload}


class OutgoingMessage(Typed):
    """`sendMessage`'s message (GraphQL's @oneOf OutgoingMessage): exactly one field, each
    written as the Send API `message` object by `send_api`. `raw` is that object as given."""

    text: MessageText | None = None
    attachment: OutgoingAttachment | None = None
    attachment_id: Id | None = None
    quick_replies: OutgoingQuickReplies | None = None
    template: OutgoingTemplate | None = None
    raw: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> OutgoingMessage:
        _exactly_one(self)
        return self

    def send_api(self) -> dict[str, Any]:
        if self.text is not None:
            return {"text": self.text}
        if self.attachment is not None:
            return {"attachment": self.attachment.send_api()}
        if self.attachment_id is not None:
            return {"attachment": {"payload": {"attachment_id": self.attachment_id}}}
        if self.quick_replies is not None:
            return {"text": self.quick_replies.text,
                    "quick_replies": [r.send_api() for r in self.quick_replies.replies]}
        if self.template is not None:
            return {"attachment": self.template.send_api()}
        assert self.raw is not None  # _one
        return self.raw


class TypedSend(Body):
    """GraphQL's `sendMessage(input: {message})`, before it is `MessagesSend`'s message."""

    message: OutgoingMessage


def _exactly_one(model: BaseModel) -> None:
    given = [name for name in type(model).model_fields if getattr(model, name) is not None]
    if len(given) != 1:
        names = ", ".join(to_camel(name) for name in type(model).model_fields)
        raise ValueError(f"give exactly one of {names}")


def _given(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


# What Meta's Send API takes by attachment type; a `file` may be any of them.
ATTACHMENT_MIME_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png", "image/gif"}),
    "video": frozenset({"video/mp4", "video/quicktime", "video/3gpp"}),
    "audio": frozenset({"audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg", "audio/wav",
                        "audio/x-wav"}),
    "file": frozenset({
        "application/pdf", "text/plain", "text/csv", "application/zip", "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }),
}
ATTACHMENT_TYPES = tuple(ATTACHMENT_MIME_TYPES)


class AttachmentUpload(Body):
    """An uploaded file's part headers (`media.upload`, `uploadAttachment`): its name, its MIME
    type, and the Send API type it is sent as (left out: from the MIME type)."""

    type: Literal["image", "video", "audio", "file"] | None = None
    filename: Annotated[str, StringConstraints(max_length=1000)] = ""
    content_type: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True,
                                                   max_length=200)]

    @field_validator("filename")
    @classmethod
    def _base_name(cls, value: str) -> str:
        """The last path segment, printable characters only (a browser may send a path)."""
        name = value.replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(ch for ch in name if ch.isprintable()).strip()[:255]
        return name or "attachment"

    @field_validator("content_type")
    @classmethod
    def _allowed(cls, value: str, info: ValidationInfo) -> str:
        media_type = value.split(";", 1)[0].strip()
        kind = info.data.get("type")
        allowed = ATTACHMENT_MIME_TYPES[kind] if kind in ("image", "video", "audio") else \
            frozenset().union(*ATTACHMENT_MIME_TYPES.values())
        if media_type not in allowed:
            raise PydanticCustomError("attachment_type", "{what} may be {allowed}; got {got}", {
                "what": f"a{'n' * (kind[0] in 'aeiou')} {kind} attachment" if kind
                else "an attachment",
                "allowed": ", ".join(sorted(allowed)), "got": media_type or "no type"})
        return media_type

    @classmethod
    def of_part(cls, file: Any, type: Any) -> AttachmentUpload:
        """From a multipart file part (starlette's `UploadFile`, strawberry's `Upload`)."""
        if not hasattr(file, "filename") or not hasattr(file, "file"):
            raise InvalidInput("file is required: the file goes in the multipart field `file`")
        return parse(cls, {"filename": file.filename or "", "type": type,
                           "content_type": file.content_type or ""})

    @property
    def kind(self) -> str:
        """The Send API's attachment type: as given, else from the MIME type."""
        return self.type or next(kind for kind, allowed in ATTACHMENT_MIME_TYPES.items()
                                 if self.content_type in allowed)


class MediaUpload(Body):
    """`media.upload`'s multipart/form-data fields (read by `AttachmentUpload.of_part`)."""

    file: Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"}), Field(
        description="The file; its part's filename and Content-Type are kept with it.")]
    type: Literal["image", "video", "audio", "file"] | None = Field(default=None, description=(
        "The Send API attachment type it is sent as; left out: from the Content-Type."))


AppId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]


class ThreadControlCall(Body):
    """Take or request control of a conversation's thread; `metadata` is passed on to the
    other app as Meta's handover `metadata`."""

    conversation_id: Id
    metadata: Annotated[str, StringConstraints(max_length=1000)] | None = None


class PassThreadControl(ThreadControlCall):
    target_app_id: AppId | None = Field(default=None, description=(
        "The app to pass the thread to; Page Inbox (263902037430900) when left out."))


class SenderActionCall(Body):
    """Show the conversation's person a sender action (Meta's names, any case)."""

    conversation_id: Id
    action: SenderActionName

    @field_validator("action", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


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


class NodeRef(Body):
    id: Id


class NodesRef(Body):
    ids: list[Id] = Field(max_length=100)  # a page's worth, read with one query per type

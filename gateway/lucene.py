"""Airy's Lucene filters (`conversations.list` `filters` as a string, GraphQL `query`), read at the
edge into a `ConversationFilter`: luqum parses the text, and its tree is read into the domain's
(`gateway.filters`), checked on the way (known fields only, typed values, every path segment a
plain field name), and bounded in length, depth and terms.

What the JSON-object filters can say is said with their fields, so such a query takes their path
exactly (the same indexes, the same way to its total); only the rest is carried as an expression.
Between terms written side by side the operator is OR, as in Lucene and Airy (Airy's inbox always
writes AND); `+term` is required and `-term` (or `NOT term`) excluded, as in Lucene.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from luqum import tree
from luqum.exceptions import InconsistentQueryException, ParseError
from luqum.thread import parse as parse_lucene

from gateway.domain import EPOCH, MAX_MS, ConversationFilter
from gateway.errors import InvalidInput
from gateway.filters import (
    EVERYTHING,
    AllOf,
    AnyOf,
    Expr,
    Field,
    Has,
    Is,
    Like,
    Value,
    Wildcard,
    Within,
    all_of,
    any_of,
    negate,
)

PREFIX = "Failed to parse Lucene query: "
MAX_LENGTH = 8000  # characters: a hundred channel ids fit
MAX_DEPTH = 20  # nested groups and operators
MAX_TERMS = 300
MAX_PATH = 10  # segments of a metadata.user_data path

FIELDS = {
    "id": Field.ID, "display_name": Field.DISPLAY_NAME, "channel_id": Field.CHANNEL_ID,
    "source": Field.SOURCE, "tag_ids": Field.TAG_IDS, "unread_count": Field.UNREAD_COUNT,
    "created_at": Field.CREATED_AT, "last_message_at": Field.LAST_MESSAGE_AT,
    # Airy's conversation metadata, as conversations.list shows it
    "metadata.state": Field.STATE, "metadata.unread_count": Field.UNREAD_COUNT,
    "metadata.contact.display_name": Field.DISPLAY_NAME,
    "metadata.contact.avatar_url": Field.AVATAR_URL,
    "metadata.contact.fetch_state": Field.FETCH_STATE,
}
USER_DATA, TAGS = "metadata.user_data.", "metadata.tags."
# Fields every conversation has a value of: `field:*` holds for all.
ALWAYS = {Field.ID, Field.CHANNEL_ID, Field.SOURCE, Field.UNREAD_COUNT, Field.CREATED_AT,
          Field.LAST_MESSAGE_AT, Field.FETCH_STATE}
NUMBERS = {Field.UNREAD_COUNT}
TIMES = {Field.CREATED_AT, Field.LAST_MESSAGE_AT}
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
INTEGER = re.compile(r"-?[0-9]{1,18}")
NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?([eE][-+]?[0-9]{1,3})?")


@dataclass(frozen=True)
class Target:
    """A field as a term names it; `tag`: the tag a `metadata.tags.<id>` name fixes."""

    field: Field
    path: tuple[str, ...] = ()
    tag: str | None = None


def fail(reason: str) -> InvalidInput:
    return InvalidInput(PREFIX + reason)


def conversation_filter(query: str) -> ConversationFilter:
    """The filter a Lucene query says; `InvalidInput` (its message beginning with PREFIX) for an
    unknown field, a malformed or unsupported query, or one past the bounds."""
    return as_filter(parse(query))


def parse(query: str) -> Expr:
    if len(query) > MAX_LENGTH:
        raise fail(f"longer than {MAX_LENGTH} characters")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise fail("not valid Unicode (a lone surrogate)") from None
    if not query.strip():
        return EVERYTHING
    try:
        parsed = parse_lucene(query)
    except (ParseError, InconsistentQueryException) as exc:
        raise fail(str(exc)) from None
    except ArithmeticError:  # luqum reads a boost's or a fuzzy term's degree with Decimal
        raise fail("a degree after ^ or ~ is not a number") from None
    _check_size(parsed)
    return _read(parsed, None)


def _check_size(root: tree.Item) -> None:
    """Bound the tree before reading it (recursively): depth and terms."""
    stack, terms = [(root, 0)], 0
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise fail(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, tree.Term):
            terms += 1
            if terms > MAX_TERMS:
                raise fail(f"more than {MAX_TERMS} terms")
        stack.extend((child, depth + 1) for child in item.children)


def _read(item: tree.Item, target: Target | None) -> Expr:
    if isinstance(item, tree.SearchField):
        if target is not None:
            raise fail(f"a field within a field ({item.name})")
        return _read(item.expr, _target(item.name))
    if isinstance(item, tree.Group | tree.FieldGroup):
        return _read(item.expr, target)
    if isinstance(item, tree.AndOperation):
        return all_of(_read(op, target) for op in item.operands)
    if isinstance(item, tree.OrOperation):
        return any_of(_read(op, target) for op in item.operands)
    if isinstance(item, tree.UnknownOperation):
        return _implicit(item.operands, target)
    if isinstance(item, tree.Not | tree.Prohibit):
        return negate(_read(item.a, target))
    if isinstance(item, tree.Plus):
        return _read(item.a, target)
    if isinstance(item, tree.Boost):  # ranks results only: the same conversations
        return _read(item.expr, target)
    if target is None:
        raise fail(f"{str(item).strip()[:50]!r} names no field: write field:value")
    if isinstance(item, tree.Word):
        return _word(target, item.value)
    if isinstance(item, tree.Phrase):
        return _value(target, _unescape(item.value[1:-1]))
    if isinstance(item, tree.Range):
        return _range(target, _bound(item.low), _bound(item.high), item.include_low,
                      item.include_high)
    if isinstance(item, tree.From):
        return _range(target, _bound(item.a), None, item.include, True)
    if isinstance(item, tree.To):
        return _range(target, None, _bound(item.a), True, item.include)
    kind = {tree.Fuzzy: "fuzzy", tree.Proximity: "proximity", tree.Regex: "regular expression"}
    raise fail(f"{kind.get(type(item), type(item).__name__.lower())} queries are not supported")


def _implicit(operands: tuple[tree.Item, ...], target: Target | None) -> Expr:
    """Terms side by side, as Lucene reads them: the required ones (`+`) if any, else at least
    one of the others; never an excluded one (`-`, `NOT`)."""
    required, optional, excluded = [], [], []
    for op in operands:
        if isinstance(op, tree.Plus):
            required.append(_read(op.a, target))
        elif isinstance(op, tree.Prohibit | tree.Not):
            excluded.append(_read(op.a, target))
        else:
            optional.append(_read(op, target))
    wanted = all_of(required) if required else any_of(optional) if optional else EVERYTHING
    return all_of([wanted, *(negate(e) for e in excluded)])


def _target(name: str) -> Target:
    if name in FIELDS:
        return Target(FIELDS[name])
    if name.startswith(USER_DATA):
        path = tuple(name[len(USER_DATA):].split("."))
        if len(path) > MAX_PATH:
            raise fail(f"{name}: a path of more than {MAX_PATH} fields")
        for segment in path:
            _check_segment(name, segment)
        return Target(Field.USER_DATA, path)
    if name.startswith(TAGS):
        tag_id = name[len(TAGS):]
        _check_segment(name, tag_id)
        return Target(Field.TAG_IDS, tag=tag_id)
    raise fail(f"unknown field {name!r}")


def _check_segment(name: str, segment: str) -> None:
    """A segment that becomes part of a stored field's path: a plain field name."""
    if not segment or "." in segment or segment.startswith("$") or "\x00" in segment \
            or "\\" in segment or len(segment) > 200:
        raise fail(f"{name}: {segment!r} is not a field name (non-empty, without '.' or '\\', "
                   "not starting with '$')")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def _pattern(raw: str) -> tuple[str | Wildcard, ...]:
    """A word's value as literal pieces and wildcards (`*`, `?`; escaped ones are literal)."""
    pieces: list[str | Wildcard] = []
    text, chars = "", iter(raw)
    for char in chars:
        if char == "\\":
            text += next(chars, "\\")
        elif char in "*?":
            if text:
                pieces.append(text)
                text = ""
            pieces.append(Wildcard.ANY if char == "*" else Wildcard.ONE)
        else:
            text += char
    if text:
        pieces.append(text)
    return tuple(pieces)


def _word(target: Target, raw: str) -> Expr:
    pattern = _pattern(raw)
    if pattern == (Wildcard.ANY,):
        return _has(target)
    if any(isinstance(p, Wildcard) for p in pattern):
        if target.tag is not None or target.field in NUMBERS | TIMES | {Field.TAG_IDS}:
            raise fail(f"{target.field.value} takes no wildcards but a lone *")
        return Like(target.field, pattern, target.path)
    return _value(target, "".join(str(p) for p in pattern))


def _has(target: Target) -> Expr:
    if target.tag is not None:
        return Is(Field.TAG_IDS, target.tag)
    if target.field in ALWAYS:
        return EVERYTHING
    if target.field is Field.TAG_IDS:
        raise fail("tag_ids:* is not supported: name the tags")
    return Has(target.field, target.path)


def _value(target: Target, text: str) -> Expr:
    """The field equals the value the text spells."""
    field = target.field
    if target.tag is not None:
        if text:
            raise fail(f"{TAGS}{target.tag} takes * or \"\" (the conversation carries the tag)")
        return Is(Field.TAG_IDS, target.tag)
    if field is Field.TAG_IDS:
        _check_segment("tag_ids", text)
    if field in TIMES:
        at = _time(field, text)
        if DAY.fullmatch(text):  # a day: any time within it
            return Within(field, at, at + 86_400_000, True, False)
        return Is(field, at)
    return Is(field, _number(field, text) if field in NUMBERS else text, target.path)


def _bound(item: tree.Item) -> str | None:
    """A range's end as text; None for `*`."""
    if isinstance(item, tree.Phrase):
        return _unescape(item.value[1:-1])
    if isinstance(item, tree.Word):
        return None if item.value == "*" else _unescape(item.value)
    raise fail(f"a range ends in a value, not {str(item).strip()[:50]!r}")


def _range(target: Target, low: str | None, high: str | None, include_low: bool,
           include_high: bool) -> Expr:
    field = target.field
    if target.tag is not None or field is Field.TAG_IDS:
        raise fail("tag_ids takes no ranges")
    if low is None and high is None:
        return _has(target)
    convert: Callable[[str], Value] = str
    if field in TIMES:
        convert = lambda text: _time(field, text)  # noqa: E731
    elif field in NUMBERS:
        convert = lambda text: _number(field, text)  # noqa: E731
    elif field is Field.USER_DATA and all(e is None or NUMBER.fullmatch(e) for e in (low, high)):
        convert = float  # numbers compare as numbers, whatever their type
    return Within(field, None if low is None else convert(low),
                  None if high is None else convert(high), include_low, include_high,
                  target.path)


def _number(field: Field, text: str) -> int:
    if not INTEGER.fullmatch(text):
        raise fail(f"{field.value} takes a whole number, not {text[:50]!r}")
    return int(text)


def _time(field: Field, text: str) -> int:
    """An ISO-8601 time (UTC when it names no offset; a day alone is its midnight) or
    milliseconds since the epoch."""
    if INTEGER.fullmatch(text):
        ms = int(text)
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise fail(f"{field.value} takes an ISO-8601 time or milliseconds since the epoch, "
                       f"not {text[:50]!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ms = (when - EPOCH) // timedelta(milliseconds=1)
    if not 0 <= ms <= MAX_MS:
        raise fail(f"{field.value}: {text[:50]!r} is out of range")
    return ms


def as_filter(expr: Expr) -> ConversationFilter:
    """The filter with what the JSON-object filters can say in their fields (one term per field,
    as they take it), and the rest, if any, as `query`."""
    where = ConversationFilter()
    rest: list[Expr] = []
    for part in expr.parts if isinstance(expr, AllOf) else (expr,):
        if not _as_field(where, part):
            rest.append(part)
    where.query = None if not rest else all_of(rest)
    return where


def _plain(value: object, limit: int) -> bool:
    """Text the JSON filters take for an id or a name."""
    return isinstance(value, str) and 0 < len(value) <= limit and value == value.strip()


def _as_field(where: ConversationFilter, part: Expr) -> bool:
    """Put `part` in the JSON filter's field that says it, if one does and is free."""
    channels = [part] if isinstance(part, Is) else list(part.parts) \
        if isinstance(part, AnyOf) else []
    if channels and where.channel_ids is None and all(
            isinstance(c, Is) and c.field is Field.CHANNEL_ID and _plain(c.value, 200)
            for c in channels):
        where.channel_ids = [str(c.value) for c in channels if isinstance(c, Is)]
        return True
    if isinstance(part, Is):
        if part.field is Field.SOURCE and where.source is None and _plain(part.value, 200):
            where.source = str(part.value)
        elif part.field is Field.STATE and where.state is None and _plain(part.value, 100):
            where.state = str(part.value)
        elif part.field is Field.TAG_IDS and _plain(part.value, 200):
            where.tag_ids = [*(where.tag_ids or []), str(part.value)]
        elif part.field is Field.UNREAD_COUNT and part.value == 0 and where.unread is None:
            where.unread = False
        else:
            return False
        return True
    if isinstance(part, Within) and part.field is Field.UNREAD_COUNT and part.high is None \
            and where.unread is None and (part.low, part.include_low) in ((1, True), (0, False)):
        where.unread = True
        return True
    if isinstance(part, Like) and part.field is Field.DISPLAY_NAME \
            and where.display_name is None and len(part.pattern) == 3 \
            and part.pattern[0] is Wildcard.ANY and part.pattern[2] is Wildcard.ANY \
            and isinstance(part.pattern[1], str) and len(part.pattern[1]) <= 200:
        where.display_name = part.pattern[1]
        return True
    return False

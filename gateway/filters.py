"""What a conversation list is narrowed to beyond the JSON-object filters: a small tree of fields,
values and boolean operators.

Airy's clients send Lucene query strings; the edge (`gateway.lucene`) reads one into this tree,
the conversations use-case reads its `source` terms as channel ids, and the store
(`gateway.store.lucene`) translates the rest into its own query. No parser's and no store's types
here, so each side can change without the other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum


class Field(str, Enum):
    """What a term names: a conversation's field (`metadata.*` names are read into these)."""

    ID = "id"
    DISPLAY_NAME = "display_name"  # the contact's; compared case-insensitively
    AVATAR_URL = "avatar_url"  # the contact's
    FETCH_STATE = "fetch_state"  # of the contact's profile
    CHANNEL_ID = "channel_id"
    SOURCE = "source"  # the channel's; the use-case reads it as channel ids
    TAG_IDS = "tag_ids"  # a value is one tag's id: the conversation carries it
    UNREAD_COUNT = "unread_count"
    CREATED_AT = "created_at"  # times: milliseconds since the epoch
    LAST_MESSAGE_AT = "last_message_at"
    STATE = "state"
    USER_DATA = "user_data"  # with a path: what users stored through metadata.upsert


Value = str | int | float | bool


class Wildcard(Enum):
    ANY = "*"  # any run of characters, none too
    ONE = "?"  # exactly one character


@dataclass(frozen=True)
class Is:
    """The field equals `value` (a text value of `user_data` also equals the number or boolean it
    spells)."""

    field: Field
    value: Value
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Like:
    """The field is text that matches a pattern of literal pieces and wildcards, whole."""

    field: Field
    pattern: tuple[str | Wildcard, ...]
    path: tuple[str, ...] = ()

    def regex(self) -> str:
        """The pattern as a regular expression (unanchored, `.` to match any character), every
        literal piece escaped: no user text is ever read as a pattern."""
        pieces = {Wildcard.ANY: ".*", Wildcard.ONE: "."}
        return "".join(pieces[p] if isinstance(p, Wildcard) else re.escape(p)
                       for p in self.pattern)

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.regex(), text, re.DOTALL) is not None


@dataclass(frozen=True)
class Within:
    """The field lies between `low` and `high` (None: no bound on that side)."""

    field: Field
    low: Value | None
    high: Value | None
    include_low: bool = True
    include_high: bool = True
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Has:
    """The field has a value, not null (Lucene's `field:*`)."""

    field: Field
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    part: Expr


Term = Is | Like | Within | Has
Expr = Is | Like | Within | Has | AllOf | AnyOf | Not
EVERYTHING: Expr = AllOf(())
NOTHING: Expr = AnyOf(())


def all_of(parts: Iterable[Expr]) -> Expr:
    """Every part holds: nested conjunctions flattened, EVERYTHING left out, one part alone."""
    flat: list[Expr] = []
    for part in parts:
        if part == NOTHING:
            return NOTHING
        flat.extend(part.parts if isinstance(part, AllOf) else [part])
    return flat[0] if len(flat) == 1 else AllOf(tuple(flat))


def any_of(parts: Iterable[Expr]) -> Expr:
    """One part holds at least: nested disjunctions flattened, NOTHING left out."""
    flat: list[Expr] = []
    for part in parts:
        if part == EVERYTHING:
            return EVERYTHING
        flat.extend(part.parts if isinstance(part, AnyOf) else [part])
    return flat[0] if len(flat) == 1 else AnyOf(tuple(flat))


def negate(part: Expr) -> Expr:
    if isinstance(part, Not):
        return part.part
    if part == EVERYTHING:
        return NOTHING
    if part == NOTHING:
        return EVERYTHING
    return Not(part)


def terms(expr: Expr) -> Iterable[Term]:
    """Every term of the tree."""
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, AllOf | AnyOf):
            stack.extend(item.parts)
        elif isinstance(item, Not):
            stack.append(item.part)
        else:
            yield item


def replace_terms(expr: Expr, replace: Callable[[Term], Expr]) -> Expr:
    """The tree with each term replaced by what `replace` makes of it."""
    if isinstance(expr, AllOf):
        return all_of(replace_terms(part, replace) for part in expr.parts)
    if isinstance(expr, AnyOf):
        return any_of(replace_terms(part, replace) for part in expr.parts)
    if isinstance(expr, Not):
        return negate(replace_terms(expr.part, replace))
    return replace(expr)


def text_matches(term: Term, text: str) -> bool:
    """Does a text field holding `text` satisfy `term`? (How `source` terms are read.)"""
    if isinstance(term, Is):
        return term.value == text
    if isinstance(term, Like):
        return term.matches(text)
    if isinstance(term, Within):
        low_ok = term.low is None or (text >= str(term.low) if term.include_low
                                      else text > str(term.low))
        high_ok = term.high is None or (text <= str(term.high) if term.include_high
                                        else text < str(term.high))
        return low_ok and high_ok
    return True

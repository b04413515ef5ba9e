"""A conversation filter's expression (`gateway.filters`) as a MongoDB query on `conversations`.

Every field is one of a fixed few, every path segment was checked at the edge, every value is
passed as a value (never as an operator), and every literal part of a pattern is escaped.

Terms ANDed on fields of their own go at the top of the query, where nx-27017 answers them in
SQL; the rest combines conditions with `$and`, `$or` and `$nor` (NOT: MongoDB's `$not` takes no
query, and nx-27017 implements none), which nx-27017 answers by reading every conversation into
Python and filtering there. Its SQL `COUNT` of such a query miscounts (a missing field under
`$nor` is not counted), so `count` asks it to count what its find returns (docs/costs.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.filters import (
    AllOf,
    AnyOf,
    Expr,
    Field,
    Has,
    Is,
    Like,
    Not,
    Term,
    Value,
    Within,
    any_of,
    replace_terms,
    terms,
    text_matches,
)
from gateway.store.queries import eq

PATHS = {
    Field.ID: "_id", Field.DISPLAY_NAME: "contact.display_name",
    Field.AVATAR_URL: "contact.avatar_url", Field.FETCH_STATE: "contact.fetch_state",
    Field.CHANNEL_ID: "channel_id", Field.UNREAD_COUNT: "unread_count",
    Field.CREATED_AT: "created_at", Field.LAST_MESSAGE_AT: "last_message_at",
    Field.STATE: "state", Field.USER_DATA: "user_data",
}
NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?([eE][-+]?[0-9]{1,3})?")
# No conversation matches this (`_id` index).
NO_MATCH: dict[str, Any] = {"_id": {"$in": []}}
# Higher than any count: makes nx-27017 count what its find returns (MongoDB counts as ever).
COUNT_LIMIT = 2**31 - 1


async def with_channels(expr: Expr, channels) -> Expr:
    """`expr` with its `source` terms read as the channels of those sources (every channel,
    connected or not: their conversations stay listed), from one read of the few channels."""
    if not any(term.field is Field.SOURCE for term in terms(expr)):
        return expr
    sources = {doc["_id"]: doc.get("source")
               async for doc in channels.find({}, {"source": 1})}

    def channels_of(term: Term) -> Expr:
        if term.field is not Field.SOURCE:
            return term
        return any_of(Is(Field.CHANNEL_ID, channel_id) for channel_id, source in sources.items()
                      if isinstance(channel_id, str) and isinstance(source, str)
                      and text_matches(term, source))

    return replace_terms(expr, channels_of)


def conditions(expr: Expr, taken: Iterable[str]) -> dict[str, Any]:
    """`expr` as conditions to add to a query with conditions on the fields `taken`: each term
    of the conjunction that has a field to itself at the top, where nx-27017 answers it in SQL
    (rows filtered as they are read, in last-activity order); the rest under `$and`. Never
    `last_message_at` at the top: a page puts its own condition there (`read_after`)."""
    query: dict[str, Any] = {}
    rest: list[dict[str, Any]] = []
    used = {*taken, "last_message_at"}
    for part in expr.parts if isinstance(expr, AllOf) else (expr,):
        condition = query_of(part)
        [key] = condition.keys() if len(condition) == 1 else [None]
        if isinstance(part, Is | Like | Within | Has) and key is not None \
                and not key.startswith("$") and key not in used:
            query[key] = condition[key]
            used.add(key)
        else:
            rest.append(condition)
    if rest:
        query["$and"] = rest
    return query


def query_of(expr: Expr) -> dict[str, Any]:
    """The whole expression as one query, each operator as MongoDB's."""
    if isinstance(expr, AllOf):
        return {"$and": [query_of(part) for part in expr.parts]} if expr.parts else {}
    if isinstance(expr, AnyOf):
        return {"$or": [query_of(part) for part in expr.parts]} if expr.parts else NO_MATCH
    if isinstance(expr, Not):
        return {"$nor": [query_of(expr.part)]}
    if expr.field is Field.TAG_IDS and isinstance(expr, Is):
        return {f"tags.{expr.value}": {"$exists": True}}
    if expr.field in (Field.TAG_IDS, Field.SOURCE):  # tags by id; sources: with_channels
        raise ValueError(f"{expr} is not a term the store answers")
    path = ".".join([PATHS[expr.field], *expr.path])
    if isinstance(expr, Within) and expr.field is Field.USER_DATA and _booleans_within(expr):
        return {"$or": [{path: _within(expr)}, {path: {"$in": _booleans_within(expr)}}]}
    return {path: _condition(expr)}


def _condition(term: Is | Like | Within | Has) -> Any:
    if isinstance(term, Has):  # a value, not null (nx-27017 reads null as missing in SQL)
        return {"$exists": True, "$ne": None}
    if isinstance(term, Within):
        return _within(term)
    if isinstance(term, Like):
        return {"$regex": _flags(term.field) + "^" + term.regex() + "$"}
    if term.field is Field.DISPLAY_NAME:
        return {"$regex": _flags(term.field) + "^" + re.escape(str(term.value)) + "$"}
    if term.field is Field.USER_DATA and isinstance(term.value, str):
        return {"$in": _spelled(term.value)}
    if term.field is Field.ID:
        return term.value
    return eq(term.value)


def _flags(field: Field) -> str:
    """Inline (nx-27017 runs a `$regex` with `$options` in Python over every document)."""
    return "(?is)" if field is Field.DISPLAY_NAME else "(?s)"


def _spelled(text: str) -> list[Value]:
    """What users may have stored that a text value spells: the text, the number, the boolean.
    A boolean is 1 or 0 here, as nx-27017 stores it: so on MongoDB too."""
    values: list[Value] = [text]
    number = float(text) if NUMBER.fullmatch(text) else 1.0 if text == "true" else \
        0.0 if text == "false" else None
    if number is not None:
        values.append(int(number) if number.is_integer() and abs(number) < 2**53 else number)
        if number in (0, 1):
            values.append(number == 1)
    return values


def _within(term: Within) -> dict[str, Any]:
    bounds: dict[str, Value] = {}
    if term.low is not None:
        bounds["$gte" if term.include_low else "$gt"] = term.low
    if term.high is not None:
        bounds["$lte" if term.include_high else "$lt"] = term.high
    return bounds


def _booleans_within(term: Within) -> list[bool]:
    """The booleans a numeric range of users' data holds, as 1 and 0 (see `_spelled`)."""
    low, high = term.low, term.high
    if isinstance(low, str) or isinstance(high, str):
        return []

    def inside(n: int) -> bool:
        return (low is None or (n >= low if term.include_low else n > low)) \
            and (high is None or (n <= high if term.include_high else n < high))

    return [b for b in (False, True) if inside(int(b))]


async def count(collection, query: dict[str, Any]) -> int:
    """How many conversations match a query with `$and`, `$or` or `$nor`, by the `count` command
    with a limit no count reaches (see the module's docstring)."""
    answer = await collection.database.command("count", collection.name, query=query,
                                               limit=COUNT_LIMIT)
    return int(answer.get("n", 0))

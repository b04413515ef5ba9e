"""Airy's Lucene filters: the edge's reading of a query (gateway/lucene.py), and the store's
translation of what it reads (gateway/store/lucene.py) run on nx-27017 against a reference
evaluation of the same expression, over conversations with every shape of field."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import lucene
from gateway.domain import ConversationFilter
from gateway.errors import InvalidInput
from gateway.filters import (
    EVERYTHING,
    NOTHING,
    AllOf,
    AnyOf,
    Expr,
    Field,
    Has,
    Is,
    Like,
    Not,
    Wildcard,
    Within,
)
from gateway.inputs import ConversationsList, parse
from tests.unit.conftest import Rig

DAY_MS = 86_400_000
STATE = Is(Field.STATE, "CLOSED")


def where(query: str) -> ConversationFilter:
    return lucene.conversation_filter(query)


def refused(query: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        where(query)
    assert caught.value.message.startswith("Failed to parse Lucene query: "), caught.value
    return caught.value.message


# --- what the edge reads -----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    # Airy's inbox: each filter it builds takes the JSON filter's field
    ("unread_count:[1 TO *]", ConversationFilter(unread=True)),
    ("unread_count:{0 TO *]", ConversationFilter(unread=True)),
    ("unread_count:0", ConversationFilter(unread=False)),
    ("display_name:*Grace*", ConversationFilter(display_name="Grace")),
    ("tag_ids:(A AND B)", ConversationFilter(tag_ids=["A", "B"])),
    ("channel_id:(X OR Y)", ConversationFilter(channel_ids=["X", "Y"])),
    ("channel_id:X", ConversationFilter(channel_ids=["X"])),
    ("source:(facebook)", ConversationFilter(source="facebook")),
    ("metadata.state:CLOSED", ConversationFilter(state="CLOSED")),
    ("id:* AND NOT metadata.state:CLOSED", ConversationFilter(query=Not(STATE))),
    # ... and joined with AND, all of them at once
    ("unread_count:[1 TO *] AND display_name:*ada* AND tag_ids:(A AND B) AND "
     "channel_id:(X OR Y) AND source:(facebook) AND metadata.state:OPEN",
     ConversationFilter(unread=True, display_name="ada", tag_ids=["A", "B"],
                        channel_ids=["X", "Y"], source="facebook", state="OPEN")),
    ("", ConversationFilter()),
    ("  ", ConversationFilter()),
    ("id:*", ConversationFilter()),
    # what the fields cannot say is kept as the expression, beside them
    ("metadata.state:OPEN AND NOT tag_ids:A", ConversationFilter(
        state="OPEN", query=Not(Is(Field.TAG_IDS, "A")))),
    ("source:(facebook OR google)", ConversationFilter(query=AnyOf((
        Is(Field.SOURCE, "facebook"), Is(Field.SOURCE, "google"))))),
    ("metadata.state:A AND metadata.state:B", ConversationFilter(
        state="A", query=Is(Field.STATE, "B"))),
])
def test_airy_filters_take_the_json_filters_fields(query, expected):
    assert where(query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    # side by side: OR, as Lucene; + required, - and NOT excluded
    ("metadata.state:A metadata.state:B", AnyOf((Is(Field.STATE, "A"), Is(Field.STATE, "B")))),
    ("metadata.state:A -unread_count:0", AllOf((Is(Field.STATE, "A"),
                                                Not(Is(Field.UNREAD_COUNT, 0))))),
    ("+metadata.state:A metadata.state:B", Is(Field.STATE, "A")),
    ("-metadata.state:A", Not(Is(Field.STATE, "A"))),
    ("metadata.state:(A B)", AnyOf((Is(Field.STATE, "A"), Is(Field.STATE, "B")))),
    ("NOT (metadata.state:A OR id:x)", Not(AnyOf((Is(Field.STATE, "A"), Is(Field.ID, "x"))))),
    ("NOT NOT metadata.state:A", Is(Field.STATE, "A")),
    ("metadata.state:A^2", Is(Field.STATE, "A")),
    # values: phrases, wildcards (escaped ones literal), ranges, open ranges
    ('display_name:"Grace Hopper"', Is(Field.DISPLAY_NAME, "Grace Hopper")),
    ('display_name:"a*b"', Is(Field.DISPLAY_NAME, "a*b")),
    (r"display_name:a\*b", Is(Field.DISPLAY_NAME, "a*b")),
    ("display_name:Gr?ce*", Like(Field.DISPLAY_NAME, ("Gr", Wildcard.ONE, "ce", Wildcard.ANY))),
    ("display_name:*", Has(Field.DISPLAY_NAME)),
    ("metadata.state:*", Has(Field.STATE)),
    ("unread_count:[2 TO 5}", Within(Field.UNREAD_COUNT, 2, 5, True, False)),
    ("unread_count:>3", Within(Field.UNREAD_COUNT, 3, None, False, True)),
    ("unread_count:<=3", Within(Field.UNREAD_COUNT, None, 3, True, True)),
    ("unread_count:[* TO *]", EVERYTHING),
    ("metadata.unread_count:2", Is(Field.UNREAD_COUNT, 2)),
    # times: ISO-8601 (UTC unless it says), a day (all of it), or milliseconds
    ("created_at:1700000000000", Is(Field.CREATED_AT, 1_700_000_000_000)),
    ('created_at:"2024-01-01T10:00:00Z"', Is(Field.CREATED_AT, 1_704_103_200_000)),
    (r"created_at:2024-01-01T10\:00\:00+01\:00", Is(Field.CREATED_AT, 1_704_099_600_000)),
    ("created_at:2024-01-01", Within(Field.CREATED_AT, 1_704_067_200_000,
                                     1_704_067_200_000 + DAY_MS, True, False)),
    ("last_message_at:[2024-01-01 TO *]", Within(Field.LAST_MESSAGE_AT, 1_704_067_200_000,
                                                 None)),
    # metadata: Airy's names for the conversation's fields, and users' data by path
    ("metadata.contact.display_name:Ada", Is(Field.DISPLAY_NAME, "Ada")),
    ("metadata.contact.fetch_state:ok", Is(Field.FETCH_STATE, "ok")),
    ("metadata.tags.T1:*", Is(Field.TAG_IDS, "T1")),
    ('metadata.tags.T1:""', Is(Field.TAG_IDS, "T1")),
    ("metadata.user_data.erp.id:42", Is(Field.USER_DATA, "42", ("erp", "id"))),
    ("metadata.user_data.erp.id:[10 TO 50]", Within(Field.USER_DATA, 10.0, 50.0,
                                                    path=("erp", "id"))),
    ("metadata.user_data.erp.id:[a TO m]", Within(Field.USER_DATA, "a", "m", path=("erp", "id"))),
    ("metadata.user_data.x:*", Has(Field.USER_DATA, ("x",))),
    ("metadata.state:A AND (metadata.state:B AND metadata.state:C)",
     AllOf((Is(Field.STATE, "A"), Is(Field.STATE, "B"), Is(Field.STATE, "C")))),
    ("metadata.state:A OR id:* OR id:x", EVERYTHING),
    ("metadata.state:A AND NOT id:*", NOTHING),
])
def test_the_rest_of_the_grammar(query, expected):
    assert lucene.parse(query) == expected


@pytest.mark.parametrize(("query", "says"), [
    ("nope:1", "unknown field 'nope'"),
    ("metadata:1", "unknown field"),
    ("metadata.whatever:1", "unknown field"),
    ("ada", "names no field"),
    ("display_name:(", "Syntax error"),
    ("display_name:[a TO", "Syntax error"),
    ("AND", "Syntax error"),
    ("display_name:ada~2", "fuzzy"),
    ('display_name:"a b"~2', "proximity"),
    ("display_name:/a.*/", "regular expression"),
    ("display_name:id:x", "field within a field"),
    ("unread_count:many", "whole number"),
    ("unread_count:1*", "no wildcards"),
    ("created_at:yesterday", "ISO-8601"),
    ("created_at:99999999999999999", "out of range"),
    ("tag_ids:a*", "no wildcards"),
    ("tag_ids:*", "name the tags"),
    ("tag_ids:[a TO b]", "no ranges"),
    ("metadata.tags.T1:x", "takes *"),
    # nothing a user writes becomes an operator or a path it should not be
    ("$where:1", "unknown field"),
    ("metadata.$gt:1", "unknown field"),
    ("metadata.user_data.$where:1", "not a field name"),
    (r"metadata.user_data.a\.b:1", "not a field name"),
    ("metadata.user_data..x:1", "not a field name"),
    ("metadata.tags.$gt:*", "not a field name"),
    ('tag_ids:"a.b"', "not a field name"),
    ('tag_ids:"$gt"', "not a field name"),
    ("metadata.user_data." + ".".join("abcdefghijk") + ":1", "more than 10"),
    # bounds: length, depth, terms
    ("display_name:" + "a" * 8000, "longer than 8000"),
    ("(" * 30 + "id:x" + ")" * 30, "nested more than"),
    ("NOT " * 30 + "id:x", "nested more than"),
    (" OR ".join(f"id:{n}" for n in range(301)), "more than 300 terms"),
    ("display_name:\ud800", "Unicode"),
])
def test_refused_queries_say_why(query, says):
    assert says in refused(query)


def test_the_inputs_read_a_string_as_lucene_and_an_object_as_json():
    lucene_body = parse(ConversationsList, {"filters": "metadata.state:OPEN"})
    assert lucene_body.filters is not None
    assert lucene_body.filters.to_domain() == ConversationFilter(state="OPEN")
    json_body = parse(ConversationsList, {"filters": {"state": "OPEN"}})
    assert json_body.filters is not None
    assert json_body.filters.to_domain() == ConversationFilter(state="OPEN")
    with pytest.raises(InvalidInput, match="^Failed to parse Lucene query: unknown field"):
        bad = parse(ConversationsList, {"filters": "state:OPEN"}).filters
        assert bad is not None
        bad.to_domain()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.lists(st.sampled_from(
    ["display_name:", "id:", "metadata.", "user_data.", "unread_count:", "created_at:", "*", "?",
     "\\", '"', "(", ")", "[", "]", "{", "}", " TO ", " AND ", " OR ", "NOT ", "-", "+", "^",
     "~", ":", "/", "$", ".", "a", "1", "2024-01-01", " ", "tag_ids:", "metadata.tags."]),
    max_size=30).map("".join))
def test_any_text_is_read_or_refused_with_the_prefix(text):
    try:
        where(text)
    except InvalidInput as exc:
        assert exc.message.startswith("Failed to parse Lucene query: ")


# --- what the store answers, on nx-27017 --------------------------------------------------------

MISSING = object()
NAMES = ["Ada Lovelace", "ada", "Grace Hopper", "a.b*c", "(x)", "Émile", "", None]
STATES = ["OPEN", "CLOSED", "", None, MISSING]
USER_VALUES = [42, 42.0, "42", 7, "7", "abc", "ABC", True, False, 1, 0, None, 3.5, "z",
               MISSING]
TAG_IDS = ["t1", "t2", "t3"]


def documents(n: int = 60, seed: int = 7) -> list[dict[str, Any]]:
    """Conversations as the store keeps them, with every shape a field takes (missing, null,
    empty, of each JSON type)."""
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        doc: dict[str, Any] = {
            "_id": f"c{i:03d}", "channel_id": rnd.choice(["ch1", "ch2", "ch3"]),
            "contact_id": str(i), "created_at": 1_000 * rnd.randrange(20),
            "last_message_at": 1_000 * (20 + i // 2), "last_message_id": None,
            "unread_count": rnd.choice([0, 0, 1, 2, 5]), "message_count": 1, "counted_ids": [],
            "contact": {"display_name": rnd.choice(NAMES), "avatar_url": None,
                        "fetch_state": rnd.choice(["ok", "pending"]), "fetch_error": None},
        }
        state = rnd.choice(STATES)
        if state is not MISSING:
            doc["state"] = state
        tags = rnd.sample(TAG_IDS, rnd.randrange(3))
        if tags or rnd.random() < 0.5:
            doc["tags"] = {t: "" for t in tags}
        user = {}
        for key in ("n", "s"):
            value = rnd.choice(USER_VALUES)
            if value is not MISSING:
                user[key] = value
        if rnd.random() < 0.3:
            user["erp"] = {"id": rnd.choice([42, "42", 7])}
        doc["user_data"] = user
        docs.append(doc)
    return docs


def value_at(doc: dict[str, Any], path: list[str]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return MISSING
        doc = doc[key]
    return doc


PATHS = {Field.ID: ["_id"], Field.DISPLAY_NAME: ["contact", "display_name"],
         Field.FETCH_STATE: ["contact", "fetch_state"], Field.CHANNEL_ID: ["channel_id"],
         Field.UNREAD_COUNT: ["unread_count"], Field.CREATED_AT: ["created_at"],
         Field.LAST_MESSAGE_AT: ["last_message_at"], Field.STATE: ["state"],
         Field.USER_DATA: ["user_data"]}


def same(stored: Any, wanted: Any) -> bool:
    """MongoDB's equality: numbers by value whatever their type; a boolean only to a boolean."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(stored, int | float) and isinstance(wanted, int | float):
        return stored == wanted
    return type(stored) is type(wanted) and stored == wanted


def as_number(value: Any) -> Any:
    """Users' data as the filters compare it: a boolean is 1 or 0 (as nx-27017 stores it)."""
    return int(value) if isinstance(value, bool) else value


def holds(expr: Expr, doc: dict[str, Any]) -> bool:
    """The reference: what the expression means for a stored conversation, with MongoDB's
    semantics (a missing field equals nothing and lies in no range)."""
    if isinstance(expr, AllOf):
        return all(holds(p, doc) for p in expr.parts)
    if isinstance(expr, AnyOf):
        return any(holds(p, doc) for p in expr.parts)
    if isinstance(expr, Not):
        return not holds(expr.part, doc)
    if expr.field is Field.TAG_IDS:
        return isinstance(expr, Is) and str(expr.value) in (doc.get("tags") or {})
    value = value_at(doc, PATHS[expr.field] + list(expr.path))
    if expr.field is Field.USER_DATA:
        value = as_number(value)
    if isinstance(expr, Has):
        return value is not MISSING and value is not None
    if isinstance(expr, Like):
        flags = re.DOTALL | (re.IGNORECASE if expr.field is Field.DISPLAY_NAME else 0)
        return isinstance(value, str) and re.fullmatch(expr.regex(), value, flags) is not None
    if isinstance(expr, Within):
        kinds = [type(b) for b in (expr.low, expr.high) if b is not None]
        numeric = all(k in (int, float) for k in kinds)
        if isinstance(value, bool) or value in (None, MISSING):
            return False
        if numeric != isinstance(value, int | float) or (not numeric and not
                                                         isinstance(value, str)):
            return False
        low_ok = expr.low is None or (value >= expr.low if expr.include_low else value > expr.low)
        high_ok = expr.high is None or (value <= expr.high if expr.include_high
                                        else value < expr.high)
        return low_ok and high_ok
    if expr.field is Field.DISPLAY_NAME:
        return isinstance(value, str) and value.lower() == str(expr.value).lower()
    if expr.field is Field.USER_DATA:
        text = str(expr.value)
        number = {"true": 1, "false": 0}.get(text, float(text) if re.fullmatch(
            r"-?[0-9]+(\.[0-9]+)?", text) else None)
        return value == text or (number is not None and isinstance(value, int | float)
                                 and value == number)
    return value is not MISSING and same(value, expr.value)


def random_expr(rnd: random.Random, depth: int = 0) -> Expr:
    if depth < 3 and rnd.random() < 0.45:
        kind = rnd.choice(["and", "or", "not"])
        if kind == "not":
            return Not(random_expr(rnd, depth + 1))
        parts = tuple(random_expr(rnd, depth + 1) for _ in range(rnd.randrange(1, 4)))
        return AllOf(parts) if kind == "and" else AnyOf(parts)
    return random_term(rnd)


def random_term(rnd: random.Random) -> Expr:
    choice = rnd.randrange(12)
    if choice == 0:
        return Is(Field.TAG_IDS, rnd.choice(TAG_IDS))
    if choice == 1:
        return Is(Field.STATE, rnd.choice(["OPEN", "CLOSED", ""]))
    if choice == 2:
        return Has(rnd.choice([Field.STATE, Field.DISPLAY_NAME]))
    if choice == 3:
        low, high = sorted(rnd.sample([0, 1, 2, 5], 2))
        return Within(Field.UNREAD_COUNT, rnd.choice([low, None]), rnd.choice([high, None]),
                      rnd.random() < 0.5, rnd.random() < 0.5)
    if choice == 4:
        return Is(Field.UNREAD_COUNT, rnd.choice([0, 1, 2]))
    if choice == 5:
        return Like(Field.DISPLAY_NAME, rnd.choice([
            (Wildcard.ANY, "ada", Wildcard.ANY), ("a", Wildcard.ONE, "b", Wildcard.ANY),
            (Wildcard.ANY, "(x", Wildcard.ANY), ("É", Wildcard.ANY), (Wildcard.ANY, "*c")]))
    if choice == 6:
        return Is(Field.DISPLAY_NAME, rnd.choice(["ADA", "a.b*c", "", "grace hopper"]))
    if choice == 7:
        return Is(Field.USER_DATA, rnd.choice(["42", "7", "abc", "true", "false", "1", "3.5"]),
                  (rnd.choice(["n", "s"]),))
    if choice == 8:
        return Within(Field.USER_DATA, *rnd.choice([(5.0, 50.0), ("a", "zz"), (None, 1.0)]),
                      path=(rnd.choice(["n", "s"]),))
    if choice == 9:
        return rnd.choice([Has(Field.USER_DATA, ("n",)), Is(Field.USER_DATA, "42", ("erp", "id"))])
    if choice == 10:
        return Within(Field.CREATED_AT, 1_000 * rnd.randrange(20), None)
    return rnd.choice([Is(Field.CHANNEL_ID, "ch2"), Is(Field.ID, "c007"),
                       Like(Field.ID, ("c0", Wildcard.ONE, "1")), NOTHING, EVERYTHING])


async def listed(rig: Rig, where: ConversationFilter, size: int = 17) -> tuple[list[str], int]:
    """Every conversation of the filter, page by page, and the first page's total."""
    ids: list[str] = []
    cursor, total = None, None
    while True:
        page = await rig.store.conversations.page(where, cursor, size)
        total = page.total if total is None else total
        ids += [c.id for c in page.items]
        if not page.has_more:
            return ids, total
        cursor = page.next_cursor


@pytest.mark.anyio
@pytest.mark.only_store("nx-27017", reason="stores documents of every shape through the driver: "
                         "tests the MongoDB translation of the expressions")
async def test_nx_27017_answers_every_shape_as_the_expression_means(rig: Rig):
    docs = documents()
    await rig.store.db.conversations.insert_many([dict(d) for d in docs])
    newest_first = [d["_id"] for d in sorted(docs, key=lambda d: (d["last_message_at"],
                                                                  d["_id"]), reverse=True)]
    rnd = random.Random(2026)
    for _ in range(200):
        expr = random_expr(rnd)
        wanted = [i for i in newest_first if holds(expr, next(d for d in docs if d["_id"] == i))]
        got, total = await listed(rig, ConversationFilter(query=expr))
        assert got == wanted, expr
        assert total == len(wanted), expr


@pytest.mark.anyio
@pytest.mark.only_store("nx-27017", reason="stores documents of every shape through the driver: "
                         "tests the MongoDB translation of the expressions")
async def test_a_query_beside_the_json_fields_narrows_them(rig: Rig):
    docs = documents()
    await rig.store.db.conversations.insert_many([dict(d) for d in docs])
    expr = Not(Is(Field.STATE, "CLOSED"))
    got, total = await listed(rig, ConversationFilter(channel_ids=["ch1"], unread=True,
                                                      query=expr))
    wanted = [d["_id"] for d in sorted(docs, key=lambda d: (d["last_message_at"], d["_id"]),
                                       reverse=True)
              if d["channel_id"] == "ch1" and d["unread_count"] > 0 and holds(expr, d)]
    assert wanted and got == wanted and total == len(wanted)


@pytest.mark.anyio
async def test_sources_are_read_as_their_channels(rig: Rig):
    await rig.connect()
    ada = (await rig.write("4201")).conversation.id
    facebook = await rig.uc.conversations.page(where=where("source:(facebook OR google)"))
    assert [v.conversation.id for v in facebook.items] == [ada] and facebook.total == 1
    for query in ("source:goo*", "NOT source:facebook", "source:(google OR line)"):
        page = await rig.uc.conversations.page(where=where(query))
        assert (page.items, page.total) == ([], 0), query
    page = await rig.uc.conversations.page(where=where("source:face?ook OR source:x"))
    assert [v.conversation.id for v in page.items] == [ada]

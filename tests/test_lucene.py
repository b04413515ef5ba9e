"""Airy's Lucene filters on a real gateway: `conversations.list` `filters` as a string, and the
GraphQL `conversations(query:)`, each against its JSON-object twin; cursors and totals; refusals,
and what an attacker might write."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.test_airy_more import gql

PREFIX = "Failed to parse Lucene query: "
PEOPLE = {"3001": ("Ada", "Lovelace"), "3002": ("Grace", "Hopper"), "3003": ("Alan", "Turing"),
          "3004": ("Edsger", "Dijkstra")}


@pytest.fixture(scope="module")
def inbox(shared_gateway, graph_server):
    """Two pages, four people: Ada and Grace on the shop, Alan and Edsger on the other; Ada's
    conversation CLOSED, Grace's OPEN; Grace's read; Ada and Alan tagged vip, Alan also late;
    user data on Alan's."""
    gw = shared_gateway
    shop, other = connect_page(gw, graph_server), connect_page(gw, graph_server)
    for psid, (first, last) in PEOPLE.items():
        graph_server.add_profile(psid, first, last)
    for psid, channel in zip(PEOPLE, (shop, shop, other, other), strict=True):
        page = channel["source_channel_id"]
        assert gw.webhook(payloads.envelope(page, payloads.text(page, psid, "hi"))) \
            .status_code == 200

    def everyone() -> list[dict]:
        return gw.post("/conversations.list", {"page_size": 100}).json()["data"]

    wait_for(lambda: len(everyone()) == 4 and all(
        "Facebook" not in c["contact"]["display_name"] for c in everyone()))
    by_name = {c["contact"]["display_name"].split()[0]: c["id"] for c in everyone()}
    vip = gw.post("/tags.create", {"name": "vip"}).json()["id"]
    late = gw.post("/tags.create", {"name": "late"}).json()["id"]
    for name, tag in (("Ada", vip), ("Alan", vip), ("Alan", late)):
        assert gw.post("/conversations.tag", {"conversation_id": by_name[name],
                                              "tag_id": tag}).status_code == 204
    for name, state in (("Ada", "CLOSED"), ("Grace", "OPEN")):
        gw.post("/conversations.set-state", {"conversation_id": by_name[name], "state": state})
    gw.post("/conversations.read", {"conversation_id": by_name["Grace"]})
    assert gw.post("/metadata.upsert", {"subject": "conversation", "id": by_name["Alan"],
                                        "data": {"erp": {"id": 42, "tier": "gold"}}}) \
        .status_code == 204
    return {"gw": gw, "shop": shop["id"], "other": other["id"], "vip": vip, "late": late,
            **by_name}


def listed(gw, filters, **body) -> tuple[list[str], int]:
    response = gw.post("/conversations.list", {"filters": filters, "page_size": 100, **body})
    assert response.status_code == 200, response.text
    answer = response.json()
    return [c["contact"]["display_name"].split()[0] for c in answer["data"]], \
        answer["pagination_data"]["total"]


def via_graphql(gw, query: str, first: int = 100, after: str | None = None) -> dict:
    answer = gql(gw, """query ($q: String, $n: Int!, $a: String) {
        conversations(query: $q, first: $n, after: $a) { totalCount
          edges { node { contact { displayName } } } pageInfo { hasNextPage endCursor } } }""",
                 {"q": query, "n": first, "a": after})
    assert "errors" not in answer, answer
    return answer["data"]["conversations"]


def graphql_names(connection: dict) -> list[str]:
    return [e["node"]["contact"]["displayName"].split()[0] for e in connection["edges"]]


def twins(inbox) -> list[tuple[str, dict]]:
    """Each filter Airy's inbox writes, and the JSON object that says the same."""
    vip, late, shop, other = inbox["vip"], inbox["late"], inbox["shop"], inbox["other"]
    return [
        ("unread_count:[1 TO *]", {"unread": True}),
        ("unread_count:0", {"unread": False}),
        ("display_name:*gRACE*", {"display_name": "gRACE"}),
        ("display_name:*a*", {"display_name": "a"}),
        (f"tag_ids:({vip})", {"tag_ids": [vip]}),
        (f"tag_ids:({vip} AND {late})", {"tag_ids": [vip, late]}),
        (f"channel_id:({shop})", {"channel_ids": [shop]}),
        (f"channel_id:({shop} OR {other})", {"channel_ids": [shop, other]}),
        ("source:(facebook)", {"source": "facebook"}),
        ("source:(google)", {"source": "google"}),
        ("metadata.state:CLOSED", {"state": "CLOSED"}),
        # joined with AND, as the inbox joins them
        (f"unread_count:[1 TO *] AND tag_ids:({vip}) AND channel_id:({shop})",
         {"unread": True, "tag_ids": [vip], "channel_ids": [shop]}),
        (f"display_name:*a* AND source:(facebook) AND channel_id:({shop} OR {other}) AND "
         "unread_count:0 AND metadata.state:OPEN",
         {"display_name": "a", "source": "facebook", "channel_ids": [shop, other],
          "unread": False, "state": "OPEN"}),
    ]


def test_each_airy_filter_lists_what_its_json_twin_lists(inbox):
    gw = inbox["gw"]
    for lucene, twin in twins(inbox):
        wanted = listed(gw, twin)
        assert listed(gw, lucene) == wanted, lucene
        connection = via_graphql(gw, lucene)
        assert (graphql_names(connection), connection["totalCount"]) == wanted, lucene
    # The filters narrow as they should (the twins are not all empty)
    assert listed(gw, "unread_count:[1 TO *]") == (["Edsger", "Alan", "Ada"], 3)
    assert listed(gw, f"tag_ids:({inbox['vip']} AND {inbox['late']})") == (["Alan"], 1)


def test_what_json_cannot_say(inbox):
    gw = inbox["gw"]
    assert listed(gw, "id:* AND NOT metadata.state:CLOSED") == (["Edsger", "Alan", "Grace"], 3)
    assert listed(gw, "metadata.state:CLOSED OR display_name:edsger*") == (["Edsger", "Ada"], 2)
    assert listed(gw, "metadata.state:(OPEN OR CLOSED) -unread_count:0") == (["Ada"], 1)
    assert listed(gw, f"NOT tag_ids:{inbox['vip']}") == (["Edsger", "Grace"], 2)
    assert listed(gw, "source:(facebook OR google) AND NOT display_name:A*") == \
        (["Edsger", "Grace"], 2)
    assert listed(gw, 'display_name:"grace hopper"') == (["Grace"], 1)
    assert listed(gw, "display_name:?da*") == (["Ada"], 1)
    assert listed(gw, "metadata.state:*") == (["Grace", "Ada"], 2)
    assert listed(gw, "metadata.user_data.erp.id:42") == (["Alan"], 1)
    assert listed(gw, "metadata.user_data.erp.id:[40 TO 50}") == (["Alan"], 1)
    assert listed(gw, "metadata.user_data.erp.tier:go*") == (["Alan"], 1)
    assert listed(gw, "metadata.user_data.erp.id:41") == ([], 0)
    assert listed(gw, f"metadata.tags.{inbox['late']}:*") == (["Alan"], 1)
    assert listed(gw, "metadata.contact.display_name:*lovelace") == (["Ada"], 1)
    assert listed(gw, f"id:{inbox['Grace']} OR id:{inbox['Ada']}") == (["Grace", "Ada"], 2)
    assert listed(gw, "created_at:[2020-01-01 TO *] AND last_message_at:{* TO 9999999999999]") \
        == (["Edsger", "Alan", "Grace", "Ada"], 4)
    assert listed(gw, "created_at:<2020-01-01T00\\:00\\:00Z") == ([], 0)
    # beside the body's channel_id, as with a JSON filter
    assert listed(gw, "NOT metadata.state:CLOSED", channel_id=inbox["shop"]) == (["Grace"], 1)


@pytest.mark.parametrize("query", ["id:* AND NOT metadata.state:CLOSED", "display_name:*a*"])
def test_cursors_and_totals_walk_a_filtered_list(inbox, query):
    gw = inbox["gw"]
    wanted, total = listed(gw, query)
    seen, cursor = [], None
    while True:
        body = {"filters": query, "page_size": 1, **({"cursor": cursor} if cursor else {})}
        answer = gw.post("/conversations.list", body).json()
        assert answer["pagination_data"]["total"] == total
        seen += [c["contact"]["display_name"].split()[0] for c in answer["data"]]
        cursor = answer["pagination_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == wanted and len(seen) == total >= 2

    seen, after = [], None
    while True:
        connection = via_graphql(gw, query, first=1, after=after)
        assert connection["totalCount"] == total
        seen += graphql_names(connection)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == wanted


@pytest.mark.parametrize(("query", "says"), [
    ("state:OPEN", "unknown field 'state'"),
    ("display_name:(ada", "Syntax error"),
    ("ada", "names no field"),
    ("display_name:/a.*/", "regular expression"),
    ("unread_count:lots", "whole number"),
    # what an attacker might write: operators, paths, patterns, size
    ("$where:1", "unknown field"),
    ('$where:"sleep(1000)"', "unknown field"),
    ("metadata.$gt:1", "unknown field"),
    ("metadata.user_data.$where:1", "not a field name"),
    ('metadata.user_data.a\\.b:1', "not a field name"),
    ('tag_ids:"$exists"', "not a field name"),
    ("display_name:" + "a" * 9000, "longer than"),
    ("(" * 200 + "id:x" + ")" * 200, "nested more than"),
    ("NOT " * 500 + "id:x", "nested more than"),
    (" OR ".join(["id:x"] * 1000), "more than 300 terms"),
])
def test_refusals_say_why_over_rest_and_graphql(inbox, query, says):
    gw = inbox["gw"]
    response = gw.post("/conversations.list", {"filters": query})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith(PREFIX) and says in message, message
    answer = gql(gw, "query ($q: String) { conversations(query: $q) { totalCount } }",
                 {"q": query})
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST" and error["message"] == message


def test_patterns_and_operators_are_only_ever_text(inbox):
    gw = inbox["gw"]
    # regular-expression characters in a value are the characters themselves
    for query in ("display_name:*.**", 'display_name:".*"', "display_name:*\\(a|g\\)*",
                  "display_name:*\\[a-z\\]*", 'metadata.state:"{\\"$ne\\": 1}"',
                  'id:"{\\"$gt\\": \\"\\"}"', "metadata.user_data.erp.tier:*$*"):
        assert listed(gw, query) == ([], 0), query
    # a JSON object that looks like an operator is still the JSON filter's, and refused there
    bad = gw.post("/conversations.list", {"filters": {"$where": "1"}})
    assert bad.status_code == 400 and bad.json()["message"].startswith("filters.$where")


def test_graphql_takes_a_query_or_a_filter_not_both(inbox):
    gw = inbox["gw"]
    answer = gql(gw, """{ conversations(query: "metadata.state:OPEN", filter: {unread: false})
        { totalCount } }""")
    assert answer["errors"][0]["message"] == "give either filter or query, not both"
    assert via_graphql(gw, "")["totalCount"] == 4  # an empty query filters nothing


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=120) | st.lists(st.sampled_from(
    ["display_name:", "id:", "metadata.", "metadata.user_data.", "unread_count:", "created_at:",
     "tag_ids:", "*", "?", "\\", '"', "(", ")", "[", "]", "{", "}", " TO ", " AND ", " OR ",
     "NOT ", "-", "+", "^", "~", ":", "/", "$", ".", "a", "1", "2024-01-01", " ", "\x00",
     "\ud800"]), max_size=25).map("".join))
def test_any_string_is_answered_or_refused_never_failed(inbox, text):
    # as JSON escapes, so that lone surrogates travel too
    response = inbox["gw"].http.post("/conversations.list", content=json.dumps({"filters": text}),
                                     headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400), (text, response.text)
    if response.status_code == 400:
        message = response.json()["message"]
        # (a lone surrogate is refused with the whole body, before any route reads it)
        assert message.startswith(PREFIX) or message == "request body has text that is not " \
            "valid Unicode (a lone surrogate)", (text, message)

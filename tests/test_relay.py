"""Relay against a real gateway: `node(id:)` refetches every type that implements `Node` (by the
ids every API hands out), `nodes(ids:)` several at once, and `last`/`before` walk conversations,
messages and contacts from the end, meeting forward pages at the same cursors; a backward page
reads no table whole and costs what a forward page costs."""

from __future__ import annotations

import uuid
from typing import Any

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.test_graphql import gql
from tests.test_store_cost import Measured

NODE = """
  __typename id
  ... on Channel { name sourceChannelId }
  ... on Conversation { unreadCount contact { id } }
  ... on Message { conversationId sentAt }
  ... on Tag { name color }
  ... on ContactCard { displayName }
  ... on Webhook { url status }
"""


def fill(gw, graph) -> dict[str, Any]:
    """A page, nine messages from one person (three in one millisecond), six more people (three
    of them last writing in one millisecond), a tag, five contacts and a webhook: their ids."""
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    for psid in ["6000", *(f"61{n}" for n in range(6))]:
        graph.add_profile(psid, "Person", psid)
    at = payloads.ts() - 60_000
    moments = [at, at + 1, at + 2, at + 2, at + 2, at + 3, at + 4, at + 5, at + 6]
    assert gw.webhook(payloads.envelope(page, *(
        payloads.text(page, "6000", f"m{n}", at=t) for n, t in enumerate(moments)))
    ).status_code == 200
    others = [at + 10, at + 11, at + 11, at + 11, at + 12, at + 13]
    assert gw.webhook(payloads.envelope(page, *(
        payloads.text(page, f"61{n}", "hi", at=t) for n, t in enumerate(others)))
    ).status_code == 200
    conversations = gw.post("/conversations.list", {"page_size": 100}).json()["data"]
    [long] = [c for c in conversations if c["contact"]["id"] == "6000"]
    messages = gw.post("/messages.list", {"conversation_id": long["id"],
                                          "page_size": 100}).json()["data"]
    tag = gw.post("/tags.create", {"name": "urgent", "color": "tag-red"}).json()
    cards = gw.post("/contacts.import",
                    [{"display_name": f"Card {n}"} for n in range(5)]).json()["data"]
    webhook = gw.post("/webhooks.subscribe", {"url": "http://127.0.0.1:9/relay"}).json()
    # Each person becomes a contact once their profile is in: the lists are walked after that.
    wait_for(lambda: gw.post("/contacts.list").json()["pagination_data"]["total"] == 5 + 7)
    return {"channel": channel, "conversation": long, "conversations": conversations,
            "message": messages[0], "messages": messages, "tag": tag, "cards": cards,
            "webhook": webhook}


def test_node_refetches_each_type_and_nodes_reads_several(gateway, graph):
    made = fill(gateway, graph)
    expected = {
        made["channel"]["id"]: ("Channel", {"sourceChannelId": made["channel"]
                                            ["source_channel_id"]}),
        made["conversation"]["id"]: ("Conversation", {"contact": {"id": "6000"}}),
        made["message"]["id"]: ("Message", {"conversationId": made["conversation"]["id"]}),
        made["tag"]["id"]: ("Tag", {"name": "urgent", "color": "RED"}),
        made["cards"][0]["id"]: ("ContactCard", {"displayName": "Card 0"}),
        made["webhook"]["id"]: ("Webhook", {"url": "http://127.0.0.1:9/relay",
                                            "status": "Subscribed"}),
    }
    for node_id, (typename, fields) in expected.items():
        answer = gql(gateway, f"query ($id: ID!) {{ node(id: $id) {{ {NODE} }} }}",
                     {"id": node_id})
        assert "errors" not in answer, answer
        node = answer["data"]["node"]
        assert node["__typename"] == typename and node["id"] == node_id
        assert fields.items() <= node.items(), node
    assert gql(gateway, '{ node(id: "no-such-object") { id } }') == {"data": {"node": None}}
    # A webhook's id is its client's choice: one that is another object's id does not hide it.
    assert gateway.post("/webhooks.subscribe", {"url": "http://127.0.0.1:9/same",
                                                "id": made["tag"]["id"]}).status_code == 200
    assert gql(gateway, "query ($id: ID!) { node(id: $id) { __typename } }",
               {"id": made["tag"]["id"]})["data"]["node"] == {"__typename": "Tag"}
    too_long = gql(gateway, "query ($id: ID!) { node(id: $id) { id } }", {"id": "x" * 201})
    assert too_long["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    # Several at once, in the order asked, null for what is none; the same as one by one.
    ids = [*reversed(expected), str(uuid.uuid4()), made["messages"][-1]["id"]]
    nodes = gql(gateway, f"query ($ids: [ID!]!) {{ nodes(ids: $ids) {{ {NODE} }} }}",
                {"ids": ids})["data"]["nodes"]
    assert [n and n["id"] for n in nodes] == [*reversed(expected), None,
                                              made["messages"][-1]["id"]]
    assert [n["__typename"] for n in nodes if n] == \
        [typename for typename, _ in reversed(expected.values())] + ["Message"]
    message = gql(gateway, f"query ($id: ID!) {{ node(id: $id) {{ {NODE} }} }}",
                  {"id": made["message"]["id"]})["data"]["node"]
    assert nodes[len(expected) - 1 - 2] == message

    too_many = gql(gateway, "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
                   {"ids": [str(n) for n in range(101)]})
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "ids" in too_many["errors"][0]["message"]


CONNECTIONS = {
    "conversations": "conversations({args}) {{ {page} }}",
    "messages": "messages(conversationId: $c, {args}) {{ {page} }}",
    "contacts": "contacts({args}) {{ {page} }}",
}
PAGE = """totalCount edges { cursor node { id } }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"""


def page_of(gw, name: str, conversation_id: str, **args: Any) -> dict:
    given = ", ".join(f"{k}: ${k}" for k in args)
    kinds = {"first": "Int", "last": "Int", "after": "String", "before": "String"}
    asked = {"c": conversation_id} if name == "messages" else {}
    declared = ", ".join([*(["$c: ID!"] if asked else []),
                          *(f"${k}: {kinds[k]}" for k in args)])
    query = CONNECTIONS[name].format(args=given, page=PAGE)
    answer = gql(gw, f"query ({declared}) {{ {query} }}", {**asked, **args})
    assert "errors" not in answer, answer
    return answer["data"][name]


def edges(page: dict) -> list[tuple[str, str]]:
    return [(edge["node"]["id"], edge["cursor"]) for edge in page["edges"]]


def walk_forward(gw, name: str, conversation_id: str, size: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    page = page_of(gw, name, conversation_id, first=size)
    while True:
        seen += edges(page)
        assert page["pageInfo"]["endCursor"] == seen[-1][1]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        page = page_of(gw, name, conversation_id, first=size,
                       after=page["pageInfo"]["endCursor"])


def walk_backward(gw, name: str, conversation_id: str, size: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    page = page_of(gw, name, conversation_id, last=size)
    assert not page["pageInfo"]["hasNextPage"]  # the last page: nothing follows it
    while True:
        assert 0 < len(page["edges"]) <= size
        seen = edges(page) + seen
        info = page["pageInfo"]
        assert info["startCursor"] == page["edges"][0]["cursor"]
        assert info["endCursor"] == page["edges"][-1]["cursor"]
        if not info["hasPreviousPage"]:
            return seen
        page = page_of(gw, name, conversation_id, last=size, before=info["startCursor"])
        assert page["pageInfo"]["hasNextPage"]  # the `before` item follows


def test_backward_pages_walk_every_item_once_meeting_forward_pages(gateway, graph):
    made = fill(gateway, graph)
    conversation_id = made["conversation"]["id"]
    listed = {  # as REST lists them
        "conversations": [c["id"] for c in made["conversations"]],
        "messages": [m["id"] for m in made["messages"]],
        "contacts": [c["id"] for c in gateway.post("/contacts.list", {"page_size": 100})
                     .json()["data"]],
    }
    assert [len(ids) for ids in listed.values()] == [7, 9, 5 + 7]
    for name, ids in listed.items():
        everything = walk_forward(gateway, name, conversation_id, 100)
        assert [i for i, _ in everything] == ids
        for size in (1, 2, 3):
            assert walk_backward(gateway, name, conversation_id, size) == everything, \
                (name, size)
            assert walk_forward(gateway, name, conversation_id, size) == everything
        # A forward page after a backward page's end goes on from there, and back again.
        back = page_of(gateway, name, conversation_id, last=2, before=everything[4][1])
        assert edges(back) == everything[2:4]
        assert back["totalCount"] == page_of(gateway, name, conversation_id, first=1)[
            "totalCount"]
        on = page_of(gateway, name, conversation_id, first=2, after=back["pageInfo"]["endCursor"])
        assert edges(on) == everything[4:6]
        assert edges(page_of(gateway, name, conversation_id, last=2,
                             before=on["pageInfo"]["startCursor"])) == everything[2:4]


def test_mixing_directions_and_bad_sizes_are_refused_clearly(shared_gateway):
    def error(args: str) -> dict:
        answer = gql(shared_gateway, f"{{ conversations({args}) {{ totalCount }} }}")
        assert answer["data"] is None
        return answer["errors"][0]

    both = error("first: 2, last: 2")
    assert both["extensions"]["code"] == "BAD_REQUEST"
    assert both["message"] == "give first or last, not both (first pages forward, last backward)"
    mixed = error('last: 2, after: "x"')
    assert mixed["extensions"]["code"] == "BAD_REQUEST"
    assert "first and after page forward, last and before backward" in mixed["message"]
    too_many = error("last: 101")
    assert too_many["message"] == "last: Input should be less than or equal to 100"
    assert error('before: "not a cursor"')["extensions"]["code"] == "BAD_REQUEST"
    answer = gql(shared_gateway, '{ messages(conversationId: "x", last: 0) { totalCount } }')
    assert answer["errors"][0]["message"] == "last: Input should be greater than or equal to 1"


def test_a_backward_page_reads_no_table_whole_and_costs_what_a_forward_one_does(
        start_gateway, graph, tmp_path):
    """Measured as tests/test_store_cost.py measures (SQLite steps, tables read whole): the
    same work as the forward page beside it, and no more with five times the messages."""
    m = Measured(start_gateway, graph, tmp_path / "store")
    try:
        m.fill(400)
        long = next(c for c in m.gw.post("/conversations.list", {"page_size": 100}).json()["data"]
                    if c["contact"]["id"] == "7100000")
        messages = m.gw.post("/messages.list", {"conversation_id": long["id"],
                                                "page_size": 100}).json()["data"]
        cursor = m.gw.post("/conversations.list", {"page_size": 10}).json()[
            "pagination_data"]["next_cursor"]

        def graphql(query: str, **variables: Any):
            return lambda: m.gw.http.post("/graphql", json={"query": query, "variables": {
                **({"c": long["id"]} if "$c" in query else {}), **variables}})

        of_messages = """query ($c: ID!, $first: Int, $after: String, $last: Int,
            $before: String) { messages(conversationId: $c, first: $first, after: $after,
            last: $last, before: $before) { totalCount edges { node { id sentAt } } } }"""
        of_conversations = """query ($first: Int, $after: String, $last: Int,
            $before: String) { conversations(first: $first, after: $after, last: $last,
            before: $before) { totalCount edges { node { id unreadCount } } } }"""
        pairs = {  # a backward page, and the forward page it is measured against
            "messages, the oldest": (graphql(of_messages, last=20),
                                     graphql(of_messages, first=20)),
            "messages, before a cursor": (
                graphql(of_messages, last=20, before=messages[60]["id"]),
                graphql(of_messages, first=20, after=messages[20]["id"])),
            "conversations, the oldest": (graphql(of_conversations, last=10),
                                          graphql(of_conversations, first=10)),
            "conversations, before a cursor": (
                graphql(of_conversations, last=5, before=cursor),
                graphql(of_conversations, first=5, after=cursor)),
        }
        small = {name: (m.work(back), m.work(ahead)) for name, (back, ahead) in pairs.items()}
        m.fill(2000)
        large = {name: m.work(back) for name, (back, _) in pairs.items()}
        report = "\n".join(
            f"{name}: backward {small[name][0][0]:.0f} -> {large[name][0]:.0f} steps "
            f"(forward {small[name][1][0]:.0f}), tables read whole: {large[name][1]} "
            f"(forward {small[name][1][1]})" for name in pairs)
        print(report)  # shown with `pytest -s`
        for name, ((back_steps, back_scans), (ahead_steps, ahead_scans)) in small.items():
            assert back_steps <= 1.25 * ahead_steps + 1500, report
            # Read in index order as far as the page goes, as forward (a LIMIT stops it).
            # (The subscribed webhooks are read whole by design, every 5 s, by the outgoing
            # feed, beside whichever request is measured.)
            assert back_scans.keys() - {"webhooks"} <= ahead_scans.keys(), report
            assert "messages" not in large[name][1], report
            assert large[name][0] <= 1.25 * back_steps + 1500, report
    finally:
        m.client.close()

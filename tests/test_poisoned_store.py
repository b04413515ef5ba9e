"""Documents the gateway cannot read, written straight into its store (as an older version,
another tool or a bug would): every read path skips them, says so once, and shows the good data."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pymongo
import pytest

from tests import payloads
from tests.conftest import GatewayProcess, connect_page, wait_for
from tests.receiver import Receiver
from tests.ws import TRANSPORT_WS, GraphQLSocket

FAST = {"WEBHOOK_TIMEOUT_SECONDS": "2", "WEBHOOK_RETRY_SECONDS": "60"}
CONVERSATIONS = """query ($first: Int!, $after: String) {
  conversations(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id unreadCount createdAt lastActivityAt contact { id displayName }
            channel { id name } tags { id name color } lastMessage { id content: rawContent sentAt } } }
  }
}"""
MESSAGES = """query ($id: ID!, $first: Int!, $after: String) {
  messages(conversationId: $id, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id content: rawContent sentAt metadata } }
  }
}"""


@pytest.fixture
def store_of() -> Iterator:
    """The database of a gateway, through pymongo: what another tool would write with."""
    clients: list[pymongo.MongoClient] = []

    def open_store(gw: GatewayProcess):
        client = pymongo.MongoClient(gw.env["MONGODB_URL"], tz_aware=True)
        clients.append(client)
        return client[gw.env["MONGODB_DATABASE"]]

    yield open_store
    for client in clients:
        client.close()


def ok(response):
    assert response.status_code in (200, 201), response.text
    return response.json()


def gql(gw: GatewayProcess, query: str, variables: dict | None = None) -> dict:
    """The data of a GraphQL answer, which must carry no error."""
    answer = ok(gw.http.post("/graphql", json={"query": query, "variables": variables or {}}))
    assert "errors" not in answer, answer
    return answer["data"]


def write(gw: GatewayProcess, page: str, psid: str, text: str) -> None:
    assert gw.webhook(payloads.envelope(page, payloads.text(page, psid, text))).status_code == 200


def text_of(message: dict) -> str:
    """The text of a message a person sent (a Messenger event), or that was sent to them."""
    content = message["content"]
    return content["text"] if "text" in content else content["message"]["text"]


def rest_pages(gw: GatewayProcess, route: str, body: dict, size: int) -> list[dict]:
    """Every item of a paged REST list, following next_cursor (at most 30 pages)."""
    items, cursor = [], None
    for _ in range(30):
        answer = ok(gw.post(route, {**body, "page_size": size, "cursor": cursor}))
        items += answer["data"]
        cursor = answer["pagination_data"]["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{route} did not end within 30 pages of {size}")


def graphql_pages(gw: GatewayProcess, query: str, field: str, size: int, **variables) -> list:
    nodes, after = [], None
    for _ in range(30):
        connection = gql(gw, query, {**variables, "first": size, "after": after})[field]
        nodes += [edge["node"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes
        after = connection["pageInfo"]["endCursor"]
    raise AssertionError(f"{field} did not end within 30 pages of {size}")


def warnings_about(gw: GatewayProcess, collection: str, doc_id: str) -> int:
    """How many log lines say that the document was skipped."""
    return sum(1 for line in gw.log().splitlines()
               if f"the {collection} document {doc_id!r} cannot be read" in line
               and "skipped a stored document" in line)


def assert_no_error_logged(gw: GatewayProcess) -> None:
    """No error of the gateway's own (a 500, a failed pass, a failed subscription group…)."""
    errors = [line for line in gw.log().splitlines() if " ERROR gateway" in line]
    assert not errors, errors


def message_doc(doc_id: str, conversation: dict, text: str, sent_at, **fields) -> dict:
    """A message document as the gateway stores a person's message, with `fields` changed."""
    return {
        "_id": doc_id, "conversation_id": conversation["id"],
        "channel_id": conversation["channel"]["id"],
        "content": {"sender": {"id": conversation["contact"]["id"]},
                    "message": {"mid": f"m_{doc_id}", "text": text}},
        "sender_type": "source_contact", "state": "delivered", "sent_at": sent_at,
        "mid": f"m_{doc_id}", "error": None, "reaction": None, "read_by_contact": False,
        "kind": "message", "send_options": None, "suggestions": {}, "user_data": {},
        "reaction_at": 0, **fields,
    }


def test_every_read_path_shows_the_good_data_around_unreadable_documents(
        start_gateway, graph, receiver, store_of):
    gw = start_gateway(**FAST)
    db = store_of(gw)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    for text in ("good 1", "good 2", "good 3"):
        write(gw, page, "5001", text)
    write(gw, page, "5002", "other")
    listed = ok(gw.post("/conversations.list"))["data"]
    assert [c["contact"]["id"] for c in listed] == ["5002", "5001"]
    other, first = listed
    vip = ok(gw.post("/tags.create", {"name": "VIP"}))
    assert gw.post("/conversations.tag", {"conversation_id": first["id"],
                                          "tag_id": vip["id"]}).status_code == 204
    hook = ok(gw.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook",
                                              "events": ["channel.updated"]}))

    times = sorted(doc["sent_at"] for doc in db.messages.find())
    between = (times[0] + times[-1]) // 2
    bad_messages = [
        message_doc("m-year-318857", first, "bad", 10**16),
        message_doc("m-negative", first, "bad", -5),
        message_doc("m-string-time", first, "bad", "yesterday"),
        message_doc("m-no-time", first, "bad", None),
        message_doc("m-content-number", first, "bad", between, content=42),
        message_doc("m-channel-int", first, "bad", between, channel_id=7),
        message_doc("m-unknown-state", first, "bad", between, state="exploded"),
        message_doc("m-no-channel", first, "bad", between),
    ]
    del bad_messages[3]["sent_at"]
    del bad_messages[-1]["channel_id"]
    db.messages.insert_many(bad_messages)
    newest = max(doc["last_message_at"] for doc in db.conversations.find())

    def conversation(doc_id: str, contact_id: str, **fields) -> dict:
        return {"_id": doc_id, "channel_id": channel["id"], "contact_id": contact_id,
                "created_at": newest - 10, "last_message_at": newest - 1, "last_message_id": None,
                "unread_count": 0, "contact": {"display_name": None, "avatar_url": None,
                                               "fetch_state": "pending", "fetch_error": None},
                **fields}

    bad_conversations = [
        conversation("c-unread-text", "6001", unread_count="x"),
        conversation("c-channel-int", "6002", channel_id=7),
        conversation("c-tags-list", "6003", tags=["a", "b"]),
        conversation("c-created-text", "6004", created_at="long ago"),
        conversation("c-unknown-fetch-state", "6005",
                     contact={"display_name": "X", "fetch_state": "weird"}),
        conversation("c-active-text", "6006", last_message_at="tomorrow"),
        conversation("c-user-data-list", "6007", user_data=[1, 2]),
        conversation("c-no-channel", "6008"),
    ]
    del bad_conversations[1]["contact_id"]
    del bad_conversations[-1]["channel_id"]
    db.conversations.insert_many(bad_conversations)
    db.conversations.update_one({"_id": first["id"]}, {"$set": {"tags.t-bad-colour": ""}})
    db.channels.insert_many([
        {"_id": "ch-year-318857", "source": "facebook", "source_channel_id": "999001",
         "name": "Bad", "image_url": None, "page_token": "", "connected": True,
         "token_valid": True, "created_at": 10**16, "updated_at": 0},
        {"_id": "ch-name-number", "source": "facebook", "source_channel_id": "999002",
         "name": 5, "image_url": None, "page_token": "", "connected": True,
         "token_valid": True, "created_at": 0, "updated_at": 0},
        {"_id": "ch-user-data-list", "source": "facebook", "source_channel_id": "999003",
         "name": "Bad", "image_url": None, "page_token": "", "connected": True,
         "token_valid": True, "created_at": 0, "updated_at": 0, "user_data": [1]},
    ])
    db.tags.insert_many([{"_id": "t-bad-colour", "name": "Rainbow", "color": "tag-rainbow"},
                         {"_id": "t-no-name", "color": "tag-red"}])
    db.webhooks.insert_many([
        {"_id": "w-url-number", "url": 5, "name": None, "events": ["message.created"],
         "headers": {}, "signature_key": "", "subscribed": False, "created_at": 0,
         "updated_at": 0, "last_success_at": None, "last_error": None, "last_error_at": None},
        {"_id": "w-headers-list", "url": "http://127.0.0.1:9/x", "name": None,
         "events": ["message.created"], "headers": ["X-A"], "signature_key": "",
         "subscribed": False, "created_at": 0, "updated_at": 0, "last_success_at": None,
         "last_error": None, "last_error_at": None},
    ])

    # REST lists and infos
    assert [c["id"] for c in ok(gw.post("/channels.list"))["data"]] == [channel["id"]]
    assert ok(gw.post("/channels.info", {"channel_id": channel["id"]}))["id"] == channel["id"]
    for bad in ("ch-year-318857", "ch-name-number", "ch-user-data-list"):
        assert gw.post("/channels.info", {"channel_id": bad}).status_code == 404
    for size in (1, 2, 3, 20):
        conversations = rest_pages(gw, "/conversations.list", {}, size)
        assert [c["id"] for c in conversations] == [other["id"], first["id"]], size
        messages = rest_pages(gw, "/messages.list", {"conversation_id": first["id"]}, size)
        assert [text_of(m) for m in messages] == ["good 3", "good 2", "good 1"], size
    info = ok(gw.post("/conversations.info", {"conversation_id": first["id"]}))
    assert text_of(info["last_message"]) == "good 3"
    assert info["metadata"]["tags"] == {vip["id"]: "", "t-bad-colour": ""}
    for bad in bad_conversations:
        assert gw.post("/conversations.info", {"conversation_id": bad["_id"]}).status_code == 404
        assert gw.post("/messages.list", {"conversation_id": bad["_id"]}).status_code == 404
    assert [t["name"] for t in ok(gw.post("/tags.list"))["data"]] == ["VIP"]
    assert [w["id"] for w in ok(gw.post("/webhooks.list"))["data"]] == [hook["id"]]
    assert ok(gw.post("/webhooks.info", {"id": hook["id"]}))["id"] == hook["id"]
    for bad in ("w-url-number", "w-headers-list"):
        assert gw.post("/webhooks.info", {"id": bad}).status_code == 404

    # GraphQL queries
    assert gql(gw, "{ channels { id } }")["channels"] == [{"id": channel["id"]}]
    assert gql(gw, "{ tags { name color } }")["tags"] == [{"name": "VIP", "color": "BLUE"}]
    for size in (1, 2, 20):
        nodes = graphql_pages(gw, CONVERSATIONS, "conversations", size)
        assert [n["id"] for n in nodes] == [other["id"], first["id"]], size
        assert nodes[1]["tags"] == [{"id": vip["id"], "name": "VIP", "color": "BLUE"}]
        assert text_of(nodes[1]["lastMessage"]) == "good 3"
        messages = graphql_pages(gw, MESSAGES, "messages", size, id=first["id"])
        assert [text_of(m) for m in messages] == ["good 3", "good 2", "good 1"], size
    one = gql(gw, "query ($id: ID!) { conversation(id: $id) { id lastMessage { id } } }",
              {"id": first["id"]})
    assert one["conversation"]["id"] == first["id"]
    missing = gw.http.post("/graphql", json={
        "query": "query ($id: ID!) { conversation(id: $id) { id } }",
        "variables": {"id": "c-unread-text"}}).json()
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert gql(gw, "{ webhooks { id } }")["webhooks"] == [{"id": hook["id"]}]

    # The outgoing webhook still hears of the good channel; the bad ones were skipped.
    assert gw.post("/channels.update", {"channel_id": channel["id"],
                                        "name": "Renamed"}).status_code == 200
    wait_for(lambda: any(e["payload"]["metadata"]["name"] == "Renamed"
                         for e in receiver.events()))

    # Each skipped document is named once in the log, however often it was met.
    for collection, doc_id in [("messages", "m-year-318857"), ("messages", "m-string-time"),
                               ("conversations", "c-unread-text"),
                               ("conversations", "c-tags-list"),
                               ("channels", "ch-name-number"), ("tags", "t-bad-colour"),
                               ("webhooks", "w-url-number")]:
        assert warnings_about(gw, collection, doc_id) == 1, (collection, doc_id)
    assert_no_error_logged(gw)


def test_a_message_sent_in_year_318857_poisons_nothing(start_gateway, graph, receiver,
                                                        store_of):
    """The issue's case end to end: a message whose timestamp is 10**16 ms stored as the
    webhook stored it (the edge refuses it now, so it is written straight into the store)."""
    gw = start_gateway(**FAST)
    db = store_of(gw)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    hook = ok(gw.post("/webhooks.subscribe", {
        "url": f"{receiver.url}/hook", "events": ["message.created", "conversation.updated"]}))
    write(gw, page, "5101", "before")
    wait_for(lambda: texts(receiver) == ["before"])
    [conversation] = ok(gw.post("/conversations.list"))["data"]

    with GraphQLSocket(gw.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("created", "subscription { messageCreated { id content: rawContent } }")
        ws.subscribe("updated", """subscription { conversationUpdated {
            id unreadCount lastActivityAt lastMessage { id } } }""")
        wait_for(lambda: gw.http.get("/health").json()["subscribers"] >= 2)
        # What ingest wrote for that event: the message, then its conversation's last message.
        db.messages.insert_one(message_doc("poison", conversation, "poison", 10**16))
        db.conversations.update_one({"_id": conversation["id"]}, {
            "$set": {"last_message_at": 10**16, "last_message_id": "poison"},
            "$inc": {"unread_count": 1}})
        write(gw, page, "5101", "after 1")
        write(gw, page, "5101", "after 2")
        created, updates = [], []
        # Its activity is the latest time there can be, and it shows no last message.
        latest = {"id": conversation["id"], "lastActivityAt": "9999-12-31T23:59:59.999Z",
                  "lastMessage": None}
        while len(created) < 2 or not any(u.items() >= latest.items() for u in updates):
            message = ws.receive()
            assert message["type"] == "next", message  # never an error, never complete
            assert "errors" not in message["payload"], message
            if message["id"] == "created":
                created.append(text_of(message["payload"]["data"]["messageCreated"]))
            else:
                updates.append(message["payload"]["data"]["conversationUpdated"])
        assert created == ["after 1", "after 2"]

    [listed] = ok(gw.post("/conversations.list"))["data"]
    assert listed["id"] == conversation["id"] and listed["last_message"] is None
    nodes = graphql_pages(gw, CONVERSATIONS, "conversations", 20)
    assert [n["id"] for n in nodes] == [conversation["id"]]
    messages = rest_pages(gw, "/messages.list", {"conversation_id": conversation["id"]}, 1)
    assert [text_of(m) for m in messages] == ["after 2", "after 1", "before"]

    # The outgoing webhook skipped the poison change, said so, and went on in order.
    wait_for(lambda: texts(receiver) == ["before", "after 1", "after 2"])
    info = ok(gw.post("/webhooks.info", {"id": hook["id"]}))
    assert "'poison' cannot be read" in info["last_error"] and "sent_at" in info["last_error"]
    assert info["last_error_at"] is not None
    wait_for(lambda: ok(gw.post("/webhooks.info", {"id": hook["id"]}))["queued"] == 0)

    # A restart resumes after the poison change: it is not met again.
    gw.stop()
    again = start_gateway(database=gw.env["MONGODB_DATABASE"], **FAST)
    write(again, page, "5101", "after the restart")
    wait_for(lambda: texts(receiver) == ["before", "after 1", "after 2", "after the restart"])
    assert ok(again.post("/webhooks.info", {"id": hook["id"]}))["last_error_at"] \
        == info["last_error_at"]
    assert "skipped a change" not in again.log()
    assert warnings_about(gw, "messages", "poison") == 1
    assert_no_error_logged(gw)
    assert_no_error_logged(again)


def texts(receiver: Receiver) -> list[str]:
    return [text_of(e["payload"]["message"]) for e in receiver.events()
            if e["type"] == "message.created"]


def delivering(start_gateway, graph, receiver: Receiver, psid: str, text: str):
    """A gateway with a page, a webhook taking message.created, and a conversation whose first
    message (`text` from `psid`) the webhook received: (gateway, channel, hook, conversation)."""
    gw = start_gateway(**FAST)
    channel = connect_page(gw, graph)
    hook = ok(gw.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook",
                                              "events": ["message.created"]}))
    write(gw, channel["source_channel_id"], psid, text)
    wait_for(lambda: texts(receiver) == [text])
    [conversation] = ok(gw.post("/conversations.list"))["data"]
    return gw, channel, hook, conversation


def test_workers_park_what_they_cannot_read_and_go_on(start_gateway, graph, receiver,
                                                       store_of):
    first, channel, hook, conversation = delivering(start_gateway, graph, receiver, "5201",
                                                    "hello")
    db = store_of(first)
    page = channel["source_channel_id"]
    first.stop()

    now = payloads.ts()
    db.messages.insert_one(message_doc("m-unreadable", conversation, "never", "x",
                                       sender_type="app_user", state="pending"))
    db.conversations.insert_one({
        "_id": "c-unreadable", "channel_id": channel["id"], "contact_id": "5299",
        "created_at": now, "last_message_at": now, "last_message_id": None, "unread_count": "x",
        "contact": {"display_name": None, "avatar_url": None, "fetch_state": "pending",
                    "fetch_error": None}})
    db.outbox.insert_many([
        {"_id": "job-unreadable", "next_at": 0, "attempts": "x", "created_at": 0, "data": {}},
        {"_id": "m-unreadable", "next_at": 0, "attempts": 0, "created_at": now, "data": {}},
    ])
    db.profile_jobs.insert_many([
        {"_id": "pj-unreadable", "next_at": 0, "attempts": 0, "created_at": 0, "data": [1]},
        {"_id": "c-unreadable", "next_at": 0, "attempts": 0, "created_at": now, "data": {}},
    ])
    db.events.insert_one({
        "_id": "ev-unreadable", "page_id": page, "kind": "message", "raw": {},
        "timestamp": "x", "contact_id": "5201", "processed": False, "received_at": 0})
    db.webhook_deliveries.insert_one({
        "_id": "d-unreadable", "webhook_id": hook["id"], "type": "message.created",
        "payload": {}, "state": "queued", "seq": 0, "created_at": "x", "next_at": 0,
        "attempts": 0, "finished_at": 0})

    gw = start_gateway(database=first.env["MONGODB_DATABASE"], **FAST)
    graph.add_profile("5202", "Ada", "Lovelace")
    sent = ok(gw.post("/messages.send", {"conversation_id": conversation["id"],
                                         "message": {"text": "still sent"}}))
    write(gw, page, "5202", "a new person")
    wait_for(lambda: any(call.json["message"].get("text") == "still sent"
                         for call in graph.calls_of("send")))
    wait_for(lambda: next(m for m in ok(gw.post("/messages.list", {
        "conversation_id": conversation["id"]}))["data"] if m["id"] == sent["id"])["state"]
        == "delivered")
    wait_for(lambda: any(c["contact"]["display_name"] == "Ada Lovelace"
                         for c in ok(gw.post("/conversations.list"))["data"]))
    # The unreadable delivery at the head of the queue left it; what follows went out.
    wait_for(lambda: texts(receiver) == ["hello", "still sent", "a new person"])
    # Both unreadable documents it was to post about are recorded on it, in either order: the
    # delivery dropped, and the message's change skipped by the feed.
    last_error = ok(gw.post("/webhooks.info", {"id": hook["id"]}))["last_error"]
    assert "dropped" in last_error or "'m-unreadable' cannot be read" in last_error, last_error

    parked = {doc["_id"]: doc for doc in db.outbox.find({"parked": {"$exists": True}})}
    parked |= {doc["_id"]: doc for doc in db.profile_jobs.find({"parked": {"$exists": True}})}
    assert set(parked) == {"job-unreadable", "m-unreadable", "pj-unreadable", "c-unreadable"}
    assert all(doc["next_at"] > now * 1000 for doc in parked.values())
    assert "attempts" in parked["job-unreadable"]["parked"]
    event = db.events.find_one({"_id": "ev-unreadable"})
    assert event["processed"] and "timestamp" in event["invalid"]
    delivery = db.webhook_deliveries.find_one({"_id": "d-unreadable"})
    assert delivery["state"] == "failed" and "created_at" in delivery["invalid"]
    for collection, doc_id in [("outbox", "job-unreadable"), ("profile_jobs", "pj-unreadable"),
                               ("events", "ev-unreadable"),
                               ("webhook_deliveries", "d-unreadable")]:
        assert warnings_about(gw, collection, doc_id) == 1, (collection, doc_id)
    log = gw.log()
    assert "pass failed" not in log
    assert_no_error_logged(gw)
    assert log.count("parked a job") == 4


def test_cursors_continue_past_documents_skipped_at_the_end_of_a_page(start_gateway, graph,
                                                                      store_of):
    """Pages of one document each, where most documents cannot be read: the list still ends."""
    gw = start_gateway()
    db = store_of(gw)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    write(gw, page, "5301", "oldest")
    write(gw, page, "5301", "newest")
    [conversation] = ok(gw.post("/conversations.list"))["data"]
    top = max(doc["sent_at"] for doc in db.messages.find())
    # Ten unreadable messages newer than both good ones, and ten sorting as no number does.
    db.messages.insert_many(
        [message_doc(f"m-{n}", conversation, "bad", top + 1 + n, content=n) for n in range(10)]
        + [message_doc(f"m-text-{n}", conversation, "bad", f"t{n}") for n in range(10)])
    answer = ok(gw.post("/messages.list", {"conversation_id": conversation["id"],
                                           "page_size": 5}))
    assert answer["data"] == [] and answer["pagination_data"]["next_cursor"]
    messages = rest_pages(gw, "/messages.list", {"conversation_id": conversation["id"]}, 5)
    assert [text_of(m) for m in messages] == ["newest", "oldest"]
    # A cursor of a page that ended on skipped documents is no message id, and works as one.
    cursor = answer["pagination_data"]["next_cursor"]
    assert "~" in cursor
    gql_messages = graphql_pages(gw, MESSAGES, "messages", 3, id=conversation["id"])
    assert [text_of(m) for m in gql_messages] == ["newest", "oldest"]
    # The same for conversations, whose cursors are opaque.
    db.conversations.insert_many([{
        "_id": f"c-{n}", "channel_id": channel["id"], "contact_id": f"53{n:02d}x",
        "created_at": 0, "last_message_at": top + 1 + n, "last_message_id": None,
        "unread_count": "x"} for n in range(10)])
    conversations = rest_pages(gw, "/conversations.list", {}, 3)
    assert [c["id"] for c in conversations] == [conversation["id"]]
    nodes = graphql_pages(gw, CONVERSATIONS, "conversations", 4)
    assert [n["id"] for n in nodes] == [conversation["id"]]
    forged = base64.urlsafe_b64encode(b"+0/1:x").decode().rstrip("=")
    refused = gw.post("/conversations.list", {"cursor": forged})
    assert refused.status_code == 400 and "cursor" in refused.json()["message"]


def test_the_webhook_feed_skips_a_change_it_cannot_deliver_says_so_and_goes_on(
        start_gateway, graph, receiver, store_of):
    gw, channel, hook, conversation = delivering(start_gateway, graph, receiver, "5401", "first")
    db = store_of(gw)
    page = channel["source_channel_id"]
    db.messages.insert_one(message_doc("m-poison", conversation, "poison", "not a time"))
    for n in range(3):
        write(gw, page, "5401", f"next {n}")
    wait_for(lambda: texts(receiver) == ["first", "next 0", "next 1", "next 2"])
    info = ok(gw.post("/webhooks.info", {"id": hook["id"]}))
    assert info["last_error"] == (
        "a change to messages was skipped: the messages document 'm-poison' cannot be read: "
        "sent_at: Input should be a valid integer")
    assert info["last_error_at"] is not None and info["queued"] == 0
    gw.kill()  # no shutdown: the position saved as it went is all the next process has

    again = start_gateway(database=gw.env["MONGODB_DATABASE"], **FAST)
    write(again, page, "5401", "after the restart")
    wait_for(lambda: texts(receiver)[-1] == "after the restart")
    assert texts(receiver) == ["first", "next 0", "next 1", "next 2", "after the restart"]
    assert ok(again.post("/webhooks.info", {"id": hook["id"]}))["last_error_at"] \
        == info["last_error_at"]
    assert "m-poison" not in again.log()

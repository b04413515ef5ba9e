"""Edits, referrals, opt-ins and unhandled kinds, end to end: Meta's documented payloads, signed,
posted to a real gateway; read back through REST, GraphQL (queries and subscriptions), outgoing
webhooks, /health, the log and the store itself."""

from __future__ import annotations

import json

import pymongo
from cryptography.fernet import Fernet

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.receiver import Receiver
from tests.test_graphql import gql, subscribed
from tests.test_store_cost import Measured
from tests.ws import TRANSPORT_WS, GraphQLSocket

PSID = "7301"
EDITED = """subscription ($conversationId: ID) {
  messageUpdated(conversationId: $conversationId) { id content: rawContent editCount edits { text } }
}"""
CONVERSATION = """query ($id: ID!) { conversation(id: $id) {
  referral { source type ref adId updatedAt }
  optins { type payload title frequency timezone expiresAt status hasToken updatedAt }
  lastMessage { edited editCount edits { text editedAt } metadata }
} }"""
CONVERSATION_UPDATED = """subscription { conversationUpdated { id referral { ref source } } }"""


def post(gw, *events: dict) -> None:
    page = events[0]["recipient"]["id"]
    response = gw.webhook(payloads.envelope(page, *events))
    assert response.status_code == 200, response.text


def edit(page: str, target_mid: str, text: str, num_edit: int, psid: str = PSID) -> dict:
    return {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": payloads.ts(),
            "message_edit": {"mid": target_mid, "text": text, "num_edit": num_edit}}


def messages(gw, conversation_id: str) -> list[dict]:
    return gw.post("/messages.list", {"conversation_id": conversation_id}).json()["data"]


def conversation(gw, psid: str = PSID) -> dict:
    listed = gw.post("/conversations.list", {"page_size": 100}).json()["data"]
    return next(c for c in listed if c["contact"]["id"] == psid)


def test_an_edit_its_replay_and_an_edit_before_its_message(gateway, graph, receiver: Receiver):
    page = connect_page(gateway, graph)["source_channel_id"]
    assert gateway.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook"}).status_code == 200
    mid = payloads.mid()
    post(gateway, payloads.text(page, PSID, "Table for 2 at 7?", message_id=mid))
    conversation_id = conversation(gateway)["id"]

    with GraphQLSocket(gateway.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("edited", EDITED, {"conversationId": conversation_id})
        subscribed(gateway, 1)
        first = edit(page, mid, "Table for 3 at 7?", 1)
        post(gateway, first)
        update = ws.next("edited")["data"]["messageUpdated"]
        assert update["content"]["message"]["text"] == "Table for 3 at 7?"
        assert (update["editCount"], update["edits"]) == (1, [{"text": "Table for 2 at 7?"}])
        post(gateway, first)  # Meta's retry
        post(gateway, {**first, "timestamp": payloads.ts()})  # the same edit, delivered again
        assert ws.nothing_within(0.5)  # nothing changed, nothing published

    [message] = messages(gateway, conversation_id)
    assert message["content"]["message"] == {"mid": mid, "text": "Table for 3 at 7?"}
    assert message["metadata"]["edit_count"] == 1
    assert [e["text"] for e in message["metadata"]["edits"]] == ["Table for 2 at 7?"]
    assert message["metadata"]["edits"][0]["edited_at"].endswith("Z")
    # Airy's message.updated to outgoing webhooks, with the edit applied.
    wait_for(lambda: any(
        e["type"] == "message.updated"
        and e["payload"]["message"]["content"]["message"]["text"] == "Table for 3 at 7?"
        for e in receiver.events()))

    # An edit of a message not stored yet waits for it; GraphQL shows the edit too.
    later = payloads.mid()
    post(gateway, edit(page, later, "Make it 8 pm", 2))
    assert [m["id"] for m in messages(gateway, conversation_id)] == [message["id"]]
    post(gateway, payloads.text(page, PSID, "Make it 7:30", message_id=later))
    newest = messages(gateway, conversation_id)[0]
    assert newest["content"]["message"]["text"] == "Make it 8 pm"
    shown = gql(gateway, CONVERSATION, {"id": conversation_id})["data"]["conversation"]
    assert shown["lastMessage"]["edited"] is True
    assert shown["lastMessage"]["editCount"] == 2
    assert [e["text"] for e in shown["lastMessage"]["edits"]] == ["Make it 7:30"]


def test_referrals_from_an_ad_and_from_an_m_me_link(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    ad = payloads.text(page, PSID, "Is the blue one in stock?", referral={
        "ref": "spring-sale", "ad_id": "23851234567890123", "source": "ADS",
        "type": "OPEN_THREAD", "ads_context_data": {"ad_title": "Spring sale",
                                                    "photo_url": "https://x.example/a.jpg"}})
    post(gateway, ad)
    shown = conversation(gateway)
    assert shown["metadata"]["referral"] == {
        "source": "ADS", "type": "OPEN_THREAD", "ref": "spring-sale",
        "ad_id": "23851234567890123", "updated_at": shown["metadata"]["referral"]["updated_at"]}

    with GraphQLSocket(gateway.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("conversations", CONVERSATION_UPDATED)
        subscribed(gateway, 1)
        post(gateway, {"sender": {"id": PSID}, "recipient": {"id": page},
                       "timestamp": payloads.ts(), "referral": {
                           "ref": "table-12", "source": "SHORTLINK", "type": "OPEN_THREAD"}})
        # Other changes to the conversation (its profile fetched) may come first.
        published = ws.next("conversations")["data"]["conversationUpdated"]
        for _ in range(5):
            if (published["referral"] or {}).get("ref") == "table-12":
                break
            published = ws.next("conversations")["data"]["conversationUpdated"]
        assert published["referral"] == {"ref": "table-12", "source": "SHORTLINK"}

    shown = conversation(gateway)
    assert (shown["metadata"]["referral"]["ref"], shown["metadata"]["referral"]["ad_id"]) == (
        "table-12", None)
    queried = gql(gateway, CONVERSATION, {"id": shown["id"]})["data"]["conversation"]
    assert queried["referral"]["source"] == "SHORTLINK" and queried["referral"]["adId"] is None
    # metadata.upsert writes users' data, never the referral.
    upsert = gateway.post("/metadata.upsert", {"subject": "conversation", "id": shown["id"],
                                               "data": {"referral": {"ref": "forged"}}})
    assert upsert.status_code == 204, upsert.text
    after = conversation(gateway)["metadata"]
    assert after["referral"]["ref"] == "table-12"
    assert after["user_data"]["referral"] == {"ref": "forged"}


def test_a_notification_token_is_kept_sealed_and_never_shown(start_gateway, graph,
                                                              receiver: Receiver):
    token = "NOTIFTOKEN" + "q7" * 30  # no uuid or hex in any answer can contain it by chance
    gateway = start_gateway(TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode())
    page = connect_page(gateway, graph)["source_channel_id"]
    assert gateway.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook"}).status_code == 200
    post(gateway, payloads.text(page, PSID, "Let me know about restocks"))
    optin = {"type": "notification_messages", "payload": "RESTOCK",
             "notification_messages_token": token, "notification_messages_frequency": "WEEKLY",
             "notification_messages_timezone": "Europe/Paris",
             "token_expiry_timestamp": 1_893_456_000_000, "user_token_status": "NOT_REFRESHED",
             "title": "Restock alerts"}
    post(gateway, {"sender": {"id": PSID}, "recipient": {"id": page}, "timestamp": payloads.ts(),
                   "optin": optin})

    shown = conversation(gateway)
    assert shown["metadata"]["optins"] == [{
        "type": "notification_messages", "payload": "RESTOCK", "title": "Restock alerts",
        "frequency": "WEEKLY", "timezone": "Europe/Paris",
        "expires_at": "2030-01-01T00:00:00.000Z", "status": None, "has_token": True,
        "updated_at": shown["metadata"]["optins"][0]["updated_at"]}]
    queried = gql(gateway, CONVERSATION, {"id": shown["id"]})["data"]["conversation"]
    assert queried["optins"][0]["hasToken"] is True
    wait_for(lambda: any(e["type"] == "conversation.updated"
                         and e["payload"]["metadata"].get("optins") for e in receiver.events()))

    answers = [
        gateway.post("/conversations.list").text,
        gateway.post("/conversations.info", {"conversation_id": shown["id"]}).text,
        gateway.post("/messages.list", {"conversation_id": shown["id"]}).text,
        json.dumps(queried),
        json.dumps(gql(gateway, "{ conversations(first: 10) { edges { node { optins { type } "
                                "lastMessage { content: rawContent metadata } } } } }")),
        json.dumps(receiver.events()),
    ]
    for answer in answers:
        assert token not in answer
    gateway.stop()  # the log is whole
    assert token not in gateway.log()
    # In the store, sealed: the conversation's copy and the events log's.
    client = pymongo.MongoClient(gateway.env["MONGODB_URL"])
    try:
        db = client[gateway.env["MONGODB_DATABASE"]]
        stored = [json.dumps(doc, default=str) for name in ("conversations", "events")
                  for doc in db[name].find()]
        [kept] = db.conversations.find_one({"contact_id": PSID})["optins"]
        [event] = [doc for doc in db.events.find() if doc.get("kind") == "optin"]
    finally:
        client.close()
    assert all(token not in doc for doc in stored)
    assert kept["token"].startswith("fernet:") and event["secret"].startswith("fernet:")
    assert "notification_messages_token" not in event["raw"]["optin"]


def test_unhandled_kinds_are_counted_on_health(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    assert gateway.http.get("/health").json()["unhandled"] == {}

    def event(**body) -> dict:
        return {"sender": {"id": PSID}, "recipient": {"id": page}, "timestamp": payloads.ts(),
                **body}

    post(gateway,
         event(account_linking={"status": "linked", "authorization_code": "code-1"}),
         event(account_linking={"status": "unlinked"}),
         # as Meta documents it: about the page, no sender
         {"recipient": {"id": page}, "timestamp": payloads.ts(),
          "policy_enforcement": {"action": "warning", "reason": "spam"}},
         # the checkbox plugin's opt-in: a user_ref, no person yet
         {"recipient": {"id": page}, "timestamp": payloads.ts(),
          "optin": {"ref": "cart", "user_ref": "ref-41"}},
         payloads.text(page, PSID, "a message is handled"))
    health = gateway.http.get("/health").json()
    assert health["unhandled"] == {"account_linking": 2, "policy_enforcement": 1,
                                   "optin.user_ref": 1}
    # kept in the raw events log, as everything Meta sends
    client = pymongo.MongoClient(gateway.env["MONGODB_URL"])
    try:
        kinds = [doc["kind"] for doc in client[gateway.env["MONGODB_DATABASE"]].events.find()]
    finally:
        client.close()
    assert sorted(kinds) == ["message", "optin", "unknown", "unknown", "unknown"]


def test_edits_referrals_and_optins_read_no_collection_whole(start_gateway, graph, tmp_path):
    """On the embedded store, counting its work: each query of these events is served by an
    index (docs/costs.md), whatever the store holds."""
    m = Measured(start_gateway, graph, tmp_path / "store")
    try:
        m.fill(200)
        page, psid = m.page, Measured.sender(0)
        target = payloads.mid()
        post(m.gw, payloads.text(page, psid, "to be edited", message_id=target))
        edits = iter(range(1, 1000))

        def event(**body) -> dict:
            return {"sender": {"id": psid}, "recipient": {"id": page},
                    "timestamp": payloads.ts(), **body}

        requests = {
            "an edit": lambda: post(m.gw, edit(page, target, "edited", next(edits), psid)),
            "an edit before its message": lambda: post(m.gw, edit(page, payloads.mid(), "x", 1,
                                                                  psid)),
            "a message after its edit": lambda: post(m.gw, payloads.text(page, psid, "new")),
            "a referral": lambda: post(m.gw, event(referral={"ref": "r", "source": "SHORTLINK",
                                                             "type": "OPEN_THREAD"})),
            "an opt-in": lambda: post(m.gw, event(optin={
                "type": "notification_messages", "payload": "P",
                "notification_messages_token": "t" * 40})),
        }
        for name, request in requests.items():
            _, scans = m.work(request)
            # The subscribed webhooks are read whole by design (a handful, every 5 s, by the
            # outgoing feed, beside whatever request is measured).
            scans.pop("webhooks", None)
            assert scans == {}, f"{name}: tables read whole: {scans}"
    finally:
        m.client.close()

from tests import payloads
from tests.conftest import connect_page, wait_for


def test_message_in_and_reply_out(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    graph.add_profile("5551", "Ada", "Lovelace")
    assert gateway.webhook(payloads.envelope(page, payloads.text(page, "5551", "hi"))).status_code == 200
    conv = gateway.post("/conversations.list").json()["data"][0]
    assert conv["last_message"]["content"]["message"]["text"] == "hi"
    sent = gateway.post("/messages.send", {"conversation_id": conv["id"], "message": {"text": "yo"}})
    assert sent.status_code == 200, sent.text
    assert sent.json()["state"] == "pending"
    def delivered():
        msgs = gateway.post("/messages.list", {"conversation_id": conv["id"]}).json()["data"]
        return msgs[0]["state"] == "delivered" and msgs
    msgs = wait_for(delivered)
    assert msgs[0]["metadata"]["source"]["id"].startswith("m_fake_")
    info = wait_for(lambda: (c := gateway.post("/conversations.info", {"conversation_id": conv["id"]}).json())["contact"]["display_name"] == "Ada Lovelace" and c)
    assert info["unread_count"] == 1

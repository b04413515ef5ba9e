"""A page token Meta refused (code 190) stops sends, against a real gateway and the Graph API
simulator: new sends answer 403 naming the fix, sends already queued fail without calling Meta,
and connecting the page again with a working token lets sends through."""

from __future__ import annotations

from tests.conftest import connect_page, wait_for
from tests.test_airy_more import gql
from tests.test_sending import send, settled, start_conversation


def test_a_refused_token_stops_sends_until_the_page_is_connected_again(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    cid = start_conversation(gateway, graph, psid="4001", channel=channel)["id"]
    graph.delays["send"] = 0.3  # the first send is under way while the others queue
    graph.add_page(page, "EAAanother-token")  # Meta now refuses the page token the gateway holds
    queued = [send(gateway, cid, {"text": f"message {n}"}) for n in range(3)]
    assert [r.status_code for r in queued] == [200, 200, 200]
    first, *rest = (settled(gateway, cid, r.json()["id"]) for r in queued)
    assert first["state"] == "failed" and first["metadata"]["source"]["error"]["code"] == 190
    for message in rest:
        assert message["state"] == "failed"
        assert "connect the page again" in message["metadata"]["error"]
    assert len(graph.calls_of("send")) == 1  # the queued ones never reached Meta

    info = gateway.post("/channels.info", {"channel_id": channel["id"]}).json()
    assert info["metadata"]["token_valid"] is False
    refused = send(gateway, cid)
    assert refused.status_code == 403
    assert "connect the page again" in refused.json()["message"]
    resent = gateway.post("/messages.resend", {"message_id": rest[0]["id"]})
    assert resent.status_code == 403
    errors = gql(gateway, """mutation($id: ID!) { sendMessage(input: {conversationId: $id,
                 message: {text: "hi"}}) { id } }""", {"id": cid})["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert "connect the page again" in errors[0]["message"]
    assert len(graph.calls_of("send")) == 1

    graph.delays.clear()
    again = gateway.post("/channels.facebook.connect",
                         {"page_id": page, "page_token": "EAAanother-token"})
    assert again.status_code == 200 and again.json()["id"] == channel["id"]
    sent = send(gateway, cid, {"text": "back"})
    assert sent.status_code == 200
    assert settled(gateway, cid, sent.json()["id"])["state"] == "delivered"
    assert wait_for(lambda: len(graph.calls_of("send")) == 2)
    assert "EAAanother-token" not in gateway.log()

"""Connecting, listing, updating and disconnecting Facebook pages."""

from __future__ import annotations

from tests.conftest import connect_page


def test_connect_subscribes_the_app_and_answers_the_channel(gateway, graph):
    graph.add_page("1234567", "EAApagetoken1", name="Pizza Place", picture="https://img.example/pp.png")
    response = gateway.post("/channels.facebook.connect",
                            {"page_id": "1234567", "page_token": "EAApagetoken1"})
    assert response.status_code == 200, response.text
    channel = response.json()
    assert set(channel) == {"id", "source", "source_channel_id", "metadata", "connected"}
    assert channel["source"] == "facebook"
    assert channel["source_channel_id"] == "1234567"
    assert channel["connected"] is True
    assert channel["metadata"] == {"name": "Pizza Place", "image_url": "https://img.example/pp.png",
                                   "token_valid": True, "user_data": {}}
    [subscribe] = graph.calls_of("subscribe")
    assert subscribe.method == "POST" and subscribe.path == "1234567/subscribed_apps"
    assert subscribe.query["access_token"] == "EAApagetoken1"
    fields = subscribe.query["subscribed_fields"].split(",")
    for needed in ("messages", "messaging_postbacks", "message_echoes", "message_deliveries",
                   "message_reads", "message_reactions", "standby"):
        assert needed in fields


def test_given_name_and_image_skip_the_page_lookup(gateway, graph):
    channel = connect_page(gateway, graph, name="My Shop", image_url="https://img.example/s.png")
    assert channel["metadata"] == {"name": "My Shop", "image_url": "https://img.example/s.png",
                                   "token_valid": True, "user_data": {}}
    assert graph.calls_of("page") == []
    assert len(graph.calls_of("subscribe")) == 1


def test_page_id_may_be_sent_as_a_number(gateway, graph):
    graph.add_page("987654", "EAAnum")
    response = gateway.post("/channels.facebook.connect", {"page_id": 987654, "page_token": "EAAnum"})
    assert response.status_code == 200, response.text
    assert response.json()["source_channel_id"] == "987654"


def test_connecting_the_same_page_again_keeps_its_id(gateway, graph):
    first = connect_page(gateway, graph, page_id="5550001", token="EAAold")
    graph.add_page("5550001", "EAAnew", name="Renamed")
    again = gateway.post("/channels.facebook.connect",
                         {"page_id": "5550001", "page_token": "EAAnew"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert again.json()["metadata"]["name"] == "Renamed"
    listed = gateway.post("/channels.list").json()["data"]
    assert [c["id"] for c in listed] == [first["id"]]


def test_graph_refusal_comes_back_with_metas_message_and_stores_nothing(gateway, graph):
    graph.add_page("7770001", "EAAright")
    response = gateway.post("/channels.facebook.connect",
                            {"page_id": "7770001", "page_token": "EAAwrong"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Error validating access token")
    assert gateway.post("/channels.list").json() == {"data": []}


def test_graph_outage_answers_502_and_stores_nothing(gateway, graph):
    graph.add_page("7770002", "EAAtok")
    graph.fail("subscribe", "server_error")
    response = gateway.post("/channels.facebook.connect",
                            {"page_id": "7770002", "page_token": "EAAtok", "name": "X",
                             "image_url": ""})
    assert response.status_code == 502
    assert "unexpected error" in response.json()["message"]
    assert gateway.post("/channels.list").json() == {"data": []}


def test_connect_refuses_bad_bodies_naming_the_field(gateway, graph):
    cases = [
        ({"page_token": "x"}, "page_id is required"),
        ({"page_id": "123"}, "page_token is required"),
        ({"page_id": "", "page_token": "x"}, "page_id"),
        ({"page_id": "not-a-number", "page_token": "x"}, "page_id must be the numeric id"),
        ({"page_id": "123", "page_token": ["x"]}, "page_token"),
    ]
    for body, expected in cases:
        response = gateway.post("/channels.facebook.connect", body)
        assert response.status_code == 400, (body, response.text)
        assert expected in response.json()["message"], (body, response.text)
    assert graph.calls == []


def test_disconnect_unsubscribes_and_keeps_history(gateway, graph):
    from tests import payloads

    channel = connect_page(gateway, graph, page_id="3330001", token="EAAdisc")
    gateway.webhook(payloads.envelope("3330001", payloads.text("3330001", "42", "before")))
    response = gateway.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    assert response.status_code == 204
    [unsubscribe] = graph.calls_of("unsubscribe")
    assert unsubscribe.method == "DELETE" and unsubscribe.path == "3330001/subscribed_apps"
    assert unsubscribe.query["access_token"] == "EAAdisc"
    assert gateway.post("/channels.list").json() == {"data": []}
    assert gateway.post("/channels.info", {"channel_id": channel["id"]}).status_code == 404
    conversations = gateway.post("/conversations.list").json()["data"]
    assert len(conversations) == 1
    assert conversations[0]["channel"]["connected"] is False
    assert conversations[0]["last_message"]["content"]["message"]["text"] == "before"
    # Disconnecting again is fine; an unknown id is not.
    assert gateway.post("/channels.facebook.disconnect",
                        {"channel_id": channel["id"]}).status_code == 204
    assert len(graph.calls_of("unsubscribe")) == 1
    unknown = gateway.post("/channels.facebook.disconnect", {"channel_id": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]


def test_disconnect_goes_through_when_meta_no_longer_accepts_the_token(gateway, graph):
    channel = connect_page(gateway, graph)
    graph.fail("unsubscribe", "bad_token")
    assert gateway.post("/channels.facebook.disconnect",
                        {"channel_id": channel["id"]}).status_code == 204
    assert gateway.post("/channels.list").json() == {"data": []}


def test_disconnect_during_a_graph_outage_keeps_the_channel(gateway, graph):
    channel = connect_page(gateway, graph)
    graph.fail("unsubscribe", "server_error")
    response = gateway.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    assert response.status_code == 502
    assert [c["id"] for c in gateway.post("/channels.list").json()["data"]] == [channel["id"]]


def test_list_info_and_update(gateway, graph):
    a = connect_page(gateway, graph, name="A")
    b = connect_page(gateway, graph, name="B")
    listed = gateway.post("/channels.list").json()["data"]
    assert [c["id"] for c in listed] == [a["id"], b["id"]]
    assert [c["id"] for c in gateway.post("/channels.list", {"source": "facebook"}).json()["data"]] \
        == [a["id"], b["id"]]
    assert gateway.post("/channels.list", {"source": "google"}).json() == {"data": []}
    assert gateway.post("/channels.info", {"channel_id": a["id"]}).json() == a

    updated = gateway.post("/channels.update", {"channel_id": a["id"], "name": "A2",
                                                "image_url": "https://img.example/a2.png"})
    assert updated.status_code == 200
    assert updated.json()["metadata"] == {"name": "A2", "image_url": "https://img.example/a2.png",
                                          "token_valid": True, "user_data": {}}
    assert gateway.post("/channels.info", {"channel_id": a["id"]}).json()["metadata"]["name"] == "A2"
    assert gateway.post("/channels.update", {"channel_id": "nope", "name": "x"}).status_code == 404
    blank = gateway.post("/channels.update", {"channel_id": a["id"], "name": "  "})
    assert blank.status_code == 400 and "name" in blank.json()["message"]
    assert gateway.post("/channels.info", {}).json() == {"message": "channel_id is required"}


def test_page_tokens_never_appear_in_answers(gateway, graph):
    channel = connect_page(gateway, graph, page_id="4440001", token="EAAsecret-token-4440001")
    answers = [
        gateway.post("/channels.list").text,
        gateway.post("/channels.info", {"channel_id": channel["id"]}).text,
        gateway.post("/channels.update", {"channel_id": channel["id"], "name": "n"}).text,
        gateway.post("/channels.facebook.connect",
                     {"page_id": "4440001", "page_token": "EAAsecret-token-4440001"}).text,
    ]
    for text in answers:
        assert "EAAsecret-token-4440001" not in text
        assert "page_token" not in text

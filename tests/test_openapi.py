"""The REST contract: schema/openapi.yaml is what the code serves, every route answers what its
schema documents (field for field, in order), and schemathesis finds no 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from gateway import domain, rest
from gateway.rest import openapi, shapes
from gateway.rest.routes import SPECS
from tests import payloads
from tests.conftest import connect_page
from tests.test_sending import settled

ROOT = Path(__file__).resolve().parent.parent


def test_the_schema_file_matches_the_code():
    assert yaml.safe_load((ROOT / "schema" / "openapi.yaml").read_text()) == openapi.build(), \
        "regenerate with: python -m gateway.rest.openapi > schema/openapi.yaml"


def assert_documented(document: dict[str, Any], name: str, answer: Any) -> None:
    """`answer` is valid against the schema `name` of `document`, and every object in it has
    exactly the fields its schema lists, in that order (the order the answers are built in)."""
    schemas = document["components"]["schemas"]
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
    jsonschema_rs.Draft202012Validator(root, validate_formats=True).validate(answer)

    def fields(schema: dict[str, Any], value: Any, where: str) -> None:
        if "$ref" in schema:
            fields(schemas[schema["$ref"].rsplit("/", 1)[1]], value, where)
        elif "anyOf" in schema and value is not None:
            (branch,) = [s for s in schema["anyOf"] if s.get("type") != "null"]
            fields(branch, value, where)
        elif "properties" in schema:
            assert list(value) == list(schema["properties"]), where
            for key, item in value.items():
                fields(schema["properties"][key], item, f"{where}.{key}")
        elif schema.get("type") == "array":
            for n, item in enumerate(value):
                fields(schema["items"], item, f"{where}[{n}]")

    fields({"$ref": root["$ref"]}, answer, name)


def test_each_shape_is_what_its_schema_documents():
    document = openapi.build()
    contact = domain.Contact("4242", "Ada Lovelace", "https://img.example/a.jpg",
                             domain.FetchState.OK)
    channel = domain.Channel("c1", "1234567890", "Shop", None, True, 1, 2,
                             user_data={"crm": {"id": 7}})
    conversation = domain.Conversation("conv-12345", "c1", contact, 1000, 2000, 1, 2, "m1",
                                       "OPEN", ["t1"], {"k": "v"})
    inbound = domain.Message("m1", conversation.id, "c1", {"message": {"text": "hi"}},
                             domain.SenderType.CONTACT, domain.DeliveryState.DELIVERED, 1500,
                             "mid.1", reaction={"emoji": "x", "sent_at": 1600})
    failed = domain.Message("m2", conversation.id, "c1", {"text": "yo"}, domain.SenderType.APP,
                            domain.DeliveryState.FAILED, domain.MAX_MS, error={"message": "no"})
    for message in (inbound, failed):
        assert_documented(document, "Message", shapes.message_json(message))
        assert_documented(document, "Message",
                          shapes.message_json(message, shapes.contact_json(conversation)))
    for last in (inbound, None):
        view = domain.ConversationView(conversation, channel, last)
        assert_documented(document, "Conversation", shapes.conversation_json(view))
    page = domain.Page([inbound, failed], ["a", "b"], True, None, 9)
    assert_documented(document, "MessagePage", shapes.page_json(page, shapes.message_json))
    webhook = domain.Webhook("w1", "https://example.com/h", None, ["message.created"], {}, True,
                             1, 2, "key", last_error="refused", last_error_at=3)
    assert_documented(document, "Webhook", shapes.webhook_json(webhook))
    assert_documented(document, "WebhookInfo", shapes.webhook_json(webhook, 0))
    # The routes answer tags and explored pages as their dataclasses: the shapes agree.
    tag = domain.Tag("t1", "VIP", "tag-red")
    assert shapes.tag_json(tag) == asdict(tag)
    assert_documented(document, "Tag", shapes.tag_json(tag))
    facebook_page = domain.FacebookPage("1234567890", "Shop", None, False)
    assert shapes.facebook_page_json(facebook_page) == asdict(facebook_page)
    assert_documented(document, "FacebookPage", shapes.facebook_page_json(facebook_page))
    card = domain.ContactCard("k1", 1, 2, "Ada", via={"phone": "1"}, address={"city": "X"},
                              conversations={"conv-12345": "facebook"},
                              metadata={"facebook": {"psid": "4242", "page_id": "1"}},
                              merge_history=[{"id": "k0", "display_name": "A"}])
    assert_documented(document, "ContactCard", shapes.contact_card_json(card))
    contacts = domain.Page([card], ["a"], False, None, 1)
    assert_documented(document, "ContactCardPage",
                      shapes.page_json(contacts, shapes.contact_card_json))


def test_every_route_answers_what_its_schema_documents(gateway, graph, receiver):
    document = gateway.http.get("/openapi.json").json()
    specs = {spec.path: spec for spec in SPECS}
    answered: set[str] = set()

    def call(path: str, **body: Any) -> Any:
        spec = specs[path]
        response = gateway.post(path, body)
        answered.add(path)
        if spec.answer is None:
            assert (response.status_code, response.content) == (spec.empty_status, b""), path
            return None
        assert response.status_code == spec.answer_status, (path, response.text)
        assert_documented(document, spec.answer, response.json())
        return response.json()

    graph.add_profile("4242", "Ada", "Lovelace")
    graph.add_page("1234567890", "page-token")
    channel = call("/channels.facebook.connect", page_id="1234567890", page_token="page-token")
    graph.add_user("user-token", ["1234567890"])
    call("/channels.facebook.explore", auth_token="user-token")
    call("/channels.update", channel_id=channel["id"], name="Shop")
    call("/channels.list")
    call("/channels.info", channel_id=channel["id"])

    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "4242", "Hi")))
    conversation = call("/conversations.list")["data"][0]
    conversation_id = conversation["id"]
    inbound = conversation["last_message"]["id"]
    call("/messages.suggest-replies", message_id=inbound,
         suggestions={"s1": {"content": {"text": "Hello!"}}})
    graph.fail("send", "bad_param")
    sent = call("/messages.send", conversation_id=conversation_id, message={"text": "Hello"})
    assert settled(gateway, conversation_id, sent["id"])["state"] == "failed"
    call("/messages.resend", message_id=sent["id"])
    settled(gateway, conversation_id, sent["id"])
    uploaded = gateway.http.post("/media.upload", files={"file": ("a.png", b"PNG", "image/png")},
                                 headers={"Apollo-Require-Preflight": "true"})
    answered.add("/media.upload")
    assert uploaded.status_code == specs["/media.upload"].answer_status, uploaded.text
    assert_documented(document, "Attachment", uploaded.json())

    tag = call("/tags.create", name="VIP", color="tag-red")
    call("/tags.update", id=tag["id"], name="Very VIP")
    call("/conversations.tag", conversation_id=conversation_id, tag_id=tag["id"])
    call("/tags.list")
    call("/metadata.upsert", subject="conversation", id=conversation_id, data={"crm": {"id": 7}})
    call("/metadata.upsert", subject="message", id=inbound, data={"seen": True})
    for path in ("/conversations.set-state", "/conversations.setState"):
        call(path, conversation_id=conversation_id, state="OPEN")
    call("/conversations.update-contact", conversation_id=conversation_id, display_name="Ada")
    call("/conversations.info", conversation_id=conversation_id)
    call("/messages.list", conversation_id=conversation_id, page_size=1)
    call("/conversations.list", page_size=1)
    for path in ("/conversations.remove-state", "/conversations.removeState",
                 "/conversations.read", "/conversations.mark-read"):
        call(path, conversation_id=conversation_id)
    call("/conversations.untag", conversation_id=conversation_id, tag_id=tag["id"])
    call("/tags.delete", id=tag["id"])
    call("/conversations.refetch", conversation_id=conversation_id)
    call("/messages.sender-action", conversation_id=conversation_id, action="typing_on")
    call("/conversations.request-thread-control", conversation_id=conversation_id)
    call("/conversations.take-thread-control", conversation_id=conversation_id)
    call("/conversations.pass-thread-control", conversation_id=conversation_id)

    card = call("/contacts.info", conversation_id=conversation_id)
    other = call("/contacts.create", display_name="Grace", via={"email": "g@x.io"},
                 address={"city": "Arlington"}, metadata={"crm": {"id": 7}})
    call("/contacts.import", contacts=[{"title": "Dr"}])
    call("/contacts.update", id=other["id"], title="Rear Admiral", via={"email": ""})
    call("/contacts.list", page_size=1)
    merged = call("/contacts.merge", source_id=card["id"], destination_id=other["id"])
    assert merged["merge_history"]
    call("/contacts.delete", id=other["id"])

    hook = call("/webhooks.subscribe", url=f"{receiver.url}/hook", name="CRM",
                headers={"X-Token": "t"}, signature_key="k")
    call("/webhooks.update", id=hook["id"], events=["message.created"])
    call("/webhooks.info", id=hook["id"])
    call("/webhooks.list")
    call("/webhooks.unsubscribe", id=hook["id"])
    call("/channels.facebook.disconnect", channel_id=channel["id"])

    assert answered == set(specs), sorted(set(specs) - answered)


def test_every_route_is_in_the_document_and_served(gateway):
    served = gateway.http.get("/openapi.json").json()
    assert served == openapi.build()
    assert sorted(served["paths"]) == sorted(route.path for route in rest.routes)


def test_schemathesis_finds_no_server_error(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "4343", "seed")))
    schemathesis = Path(sys.executable).with_name("schemathesis")
    out = subprocess.run(
        [str(schemathesis), "run", f"{gateway.url}/openapi.json", "--url", gateway.url,
         "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "40",
         "--request-timeout", "10", "--seed", "1"],
        check=False, capture_output=True, text=True, timeout=600,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
    )
    print(out.stdout[-3000:])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]

"""Outgoing webhooks: subscribing, changing, unsubscribing, and what a webhook may not be."""

from __future__ import annotations

import pytest

from gateway.domain import WEBHOOK_EVENTS, now_ms
from gateway.errors import InvalidInput, NotFound
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio

URL = "https://example.com/hook"


async def test_a_webhook_is_subscribed_to_every_event_by_default(rig: Rig):
    webhook = await rig.uc.webhooks.subscribe(f" {URL} ", name=" CRM ",
                                              headers={"X-Team": "support"},
                                              signature_key="s3cret")

    assert (webhook.url, webhook.name, webhook.subscribed) == (URL, "CRM", True)
    assert webhook.events == list(WEBHOOK_EVENTS)
    assert webhook.headers == {"X-Team": "support"}
    assert "s3cret" not in repr(webhook)
    assert rig.signals.webhooks.take()
    got, queued = await rig.uc.webhooks.info(webhook.id)
    assert (got.id, got.url, got.signature_key, queued) == (webhook.id, URL, "s3cret", 0)
    assert [(w.id, n) for w, n in await rig.uc.webhooks.all()] == [(webhook.id, 0)]


async def test_a_webhook_is_changed_and_its_events_kept_in_their_order(rig: Rig):
    webhook = await rig.uc.webhooks.subscribe(URL, events=["message.created"])
    rig.signals.webhooks.take()

    changed = await rig.uc.webhooks.update(
        webhook.id, url="https://example.org/other", name="Other",
        events=["channel.updated", "message.created"], headers={}, signature_key="")

    assert (changed.url, changed.name, changed.headers) == ("https://example.org/other",
                                                           "Other", {})
    assert changed.events == ["message.created", "channel.updated"]
    assert rig.signals.webhooks.take()
    assert (await rig.uc.webhooks.info(webhook.id))[0].events == changed.events


async def test_unsubscribing_drops_what_was_queued_and_subscribing_again_keeps_the_id(rig: Rig):
    webhook = await rig.uc.webhooks.subscribe(URL)
    await rig.store.deliveries.enqueue(webhook.id, "change-1", "message.created", {"a": 1},
                                       now_ms(), 1)
    assert (await rig.uc.webhooks.info(webhook.id))[1] == 1

    gone = await rig.uc.webhooks.unsubscribe(webhook.id)

    assert not gone.subscribed and not gone.wants("message.created")
    assert (await rig.uc.webhooks.info(webhook.id))[1] == 0
    again = await rig.uc.webhooks.subscribe("https://example.com/new", webhook_id=webhook.id,
                                            events=["conversation.updated"])
    assert (again.id, again.subscribed, again.url) == (webhook.id, True,
                                                       "https://example.com/new")
    assert again.events == ["conversation.updated"]
    assert [w.id for w, _ in await rig.uc.webhooks.all()] == [webhook.id]


async def test_a_new_webhook_may_be_given_its_id(rig: Rig):
    webhook = await rig.uc.webhooks.subscribe(URL, webhook_id="my-hook")

    assert webhook.id == "my-hook"


async def test_an_unknown_webhook_is_not_found(rig: Rig):
    for call in (rig.uc.webhooks.info, rig.uc.webhooks.unsubscribe, rig.uc.webhooks.update):
        with pytest.raises(NotFound, match="webhook no-such-webhook"):
            await call("no-such-webhook")


@pytest.mark.parametrize("url, message", [
    ("ftp://example.com/hook", "url must be an http or https URL"),
    ("example.com/hook", "url must be an http or https URL"),
    ("http://example.com:99999/", "url must be an http or https URL"),
    ("https://example.com/" + "x" * 2000, "url must be an http or https URL"),
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is not public \\(loopback\\)"),
    ("http://10.1.2.3/hook", "10.1.2.3 is not public \\(private\\)"),
    ("http://[::1]/hook", "::1 is not public \\(loopback\\)"),
    ("http://169.254.169.254/latest", "not public \\(link-local\\)"),
])
async def test_refused_urls(rig: Rig, url, message):
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.webhooks.subscribe(url)
    webhook = await rig.uc.webhooks.subscribe(URL)
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.webhooks.update(webhook.id, url=url)
    assert [w.url for w, _ in await rig.uc.webhooks.all()] == [URL]


@pytest.mark.parametrize("headers, message", [
    ({"Content-Type": "text/plain"}, "'Content-Type' cannot be given"),
    ({"X-Airy-Content-Signature": "x"}, "cannot be given"),
    ({"Host": "elsewhere"}, "'Host' cannot be given"),
    ({"bad name": "x"}, "'bad name' is not a header name"),
    ({"": "x"}, "is not a header name"),
    ({"X-A": "1", "x-a": "2"}, "'x-a' is given twice"),
    ({"X-A": "line\r\nInjected: yes"}, "the value of 'X-A' must be text"),
    ({"X-A": "x" * 4001}, "the value of 'X-A' must be text"),
    ({"X-A": " padded"}, "the value of 'X-A' must be text"),
    ({f"X-{n}": "v" for n in range(31)}, "headers: at most 30"),
])
async def test_refused_headers_name_the_header_never_its_value(rig: Rig, headers, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        await rig.uc.webhooks.subscribe(URL, headers=headers)
    assert "Injected" not in refused.value.message
    assert await rig.uc.webhooks.all() == []


@pytest.mark.parametrize("change, message", [
    ({"events": []}, "events must name one or more of"),
    ({"events": ["message.created", "message.deleted"]}, "unknown: message.deleted"),
    ({"name": "n" * 201}, "name must be at most 200 characters"),
    ({"signature_key": "k" * 501}, "signature_key must be at most 500 characters"),
])
async def test_refused_events_names_and_keys(rig: Rig, change, message):
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.webhooks.subscribe(URL, **change)
    webhook = await rig.uc.webhooks.subscribe(URL)
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.webhooks.update(webhook.id, **change)

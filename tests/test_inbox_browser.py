"""The inbox in a real browser: Debian's Chromium, headless, driven by Playwright.

Each test is one thing a support person does, against a real gateway and the fake Graph API; each
keeps a screenshot in test-output/ (E2E_OUTPUT_DIR). The browser reads times in UTC, in en-GB.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.config import DEFAULT_INBOX_DIR
from tests import payloads
from tests.conftest import GatewayProcess, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(os.environ.get("E2E_OUTPUT_DIR",
                             Path(__file__).resolve().parent.parent / "test-output"))

pytestmark = [
    pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs it)"),
    pytest.mark.skipif(
        not (Path(DEFAULT_INBOX_DIR) / "index.html").is_file(),
        reason="the inbox is not built (cd frontend-sample && npm ci && npm run build)"),
]

TOKEN = "browser-token"
PAGE = "4242001"
TODAY_TIME = re.compile(r"^\d{2}:\d{2}$")  # en-GB, a time today


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)  # two shared cores: a live update may take a few seconds
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()
    expect.set_options(timeout=5_000)  # Playwright's default, for the modules that follow


@pytest.fixture
def page(browser, request) -> Iterator[Any]:
    """A fresh tab; its screenshot is kept as test-output/<test name>.png, pass or fail."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB",
                                  timezone_id="UTC")
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    OUTPUT.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(OUTPUT / f"{request.node.name}.png"), full_page=True)
    context.close()


def inbox(start_gateway, graph, **env: str) -> GatewayProcess:
    """A gateway with the Corner Bakery page connected."""
    gw = start_gateway(**env)
    graph.add_page(PAGE, "EAAbrowser", name="Corner Bakery")
    headers = {"Authorization": f"Bearer {env['SYSTEM_TOKEN']}"} if "SYSTEM_TOKEN" in env else {}
    assert gw.post("/channels.facebook.connect", {"page_id": PAGE, "page_token": "EAAbrowser"},
                   headers=headers).status_code == 200
    return gw


def write(gw: GatewayProcess, psid: str, text: str, at: int | None = None) -> None:
    """The person `psid` writes to the page, as Meta posts it."""
    body = payloads.envelope(PAGE, payloads.text(PAGE, psid, text, at=at))
    assert gw.webhook(body).status_code == 200


def open_inbox(page, gw: GatewayProcess) -> None:
    from playwright.sync_api import expect

    page.goto(gw.url + "/inbox/")
    expect(page.get_by_test_id("channel")).to_contain_text("Corner Bakery")


def conversation_named(page, name: str):
    return page.get_by_test_id("conversation").filter(has_text=name)


def test_a_person_uses_the_live_inbox(start_gateway, graph, page):
    from playwright.sync_api import expect

    gw = inbox(start_gateway, graph, SYSTEM_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    graph.add_profile("7007", "Marie", "Curie")

    page.goto(gw.url + "/inbox/")
    # The gateway has a token: the inbox asks for it, and keeps it for the session only.
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-input").press("Enter")
    expect(page.get_by_test_id("channel")).to_contain_text("Corner Bakery")
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('messenger-gateway-token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0

    # Someone writes to the page: the conversation appears without a reload, unread, with its time.
    write(gw, "7007", "Do you have croissants today?")
    conversation = page.get_by_test_id("conversation")
    expect(conversation.get_by_test_id("preview")).to_have_text("Do you have croissants today?")
    expect(conversation.get_by_test_id("unread")).to_have_text("1")
    expect(conversation).to_have_class(re.compile(r"\bunread\b"))
    expect(conversation).to_contain_text("Marie Curie")
    expect(conversation.get_by_test_id("conversation-time")).to_have_text(TODAY_TIME)

    # Opening it shows the thread, with the time of each message, and marks it read.
    conversation.click()
    message = page.get_by_test_id("message")
    expect(message.get_by_test_id("message-text")).to_have_text("Do you have croissants today?")
    conversation_id = conversation.get_attribute("data-id")
    [stored] = gw.post("/messages.list", {"conversation_id": conversation_id},
                       headers=auth).json()["data"]
    sent_at = datetime.fromisoformat(stored["sent_at"].replace("Z", "+00:00"))
    stamp = message.get_by_test_id("message-time")
    assert datetime.fromisoformat(stamp.get_attribute("datetime").replace("Z", "+00:00")) == sent_at
    expect(stamp).to_have_text(sent_at.astimezone(UTC).strftime("%H:%M"))
    wait_for(lambda: gw.post("/conversations.info", {"conversation_id": conversation_id},
                             headers=auth).json()["metadata"]["unread_count"] == 0)
    expect(page.get_by_test_id("unread")).to_have_count(0)
    expect(conversation).not_to_have_class(re.compile(r"\bunread\b"))

    # A reply goes pending, then delivered, live.
    graph.delays["send"] = 0.5
    page.get_by_test_id("reply-input").fill("Yes, fresh from the oven!")
    page.get_by_test_id("reply-send").click()
    reply = page.get_by_test_id("message").filter(has_text="Yes, fresh from the oven!")
    expect(reply.get_by_test_id("state")).to_have_text("pending")
    expect(reply.get_by_test_id("state")).to_have_text("delivered")
    [call] = graph.calls_of("send")
    assert call.json["message"]["text"] == "Yes, fresh from the oven!"
    graph.delays.clear()

    # Marie reads it: the reply says so.
    expect(reply.get_by_test_id("seen")).to_have_count(0)
    assert gw.webhook(payloads.envelope(PAGE, payloads.read(PAGE, "7007", payloads.ts()))
                      ).status_code == 200
    expect(reply.get_by_test_id("seen")).to_have_text("seen")

    # A reply Meta refuses shows why, and goes again with Resend.
    graph.fail("send", "outside_window")
    page.get_by_test_id("reply-input").fill("Are you still there?")
    page.get_by_test_id("reply-send").click()
    refused = page.get_by_test_id("message").filter(has_text="Are you still there?")
    expect(refused.get_by_test_id("state")).to_have_text(
        "failed: (#10) This message is sent outside of allowed window.")
    refused.get_by_test_id("resend").click()
    expect(refused.get_by_test_id("state")).to_have_text("delivered")
    expect(refused.get_by_test_id("resend")).to_have_count(0)
    assert [c.json["message"]["text"] for c in graph.calls_of("send")][-2:] == [
        "Are you still there?", "Are you still there?"]
    expect(page.get_by_test_id("message")).to_have_count(3)  # sent again, not a second message

    # The person answers while the thread is open: it appears in the thread, already read.
    write(gw, "7007", "Great, see you soon")
    expect(page.get_by_test_id("message-text").last).to_have_text("Great, see you soon")
    expect(conversation.get_by_test_id("preview")).to_have_text("Great, see you soon")
    expect(page.get_by_test_id("unread")).to_have_count(0)
    page.screenshot(path=str(OUTPUT / "inbox.png"), full_page=True)


def test_older_messages_load_on_demand(start_gateway, graph, page):
    """A long thread opens on its newest messages, at its end; older ones come a page at a time."""
    from playwright.sync_api import expect

    gw = inbox(start_gateway, graph)
    graph.add_profile("8008", "Ada", "Lovelace")
    first = int(datetime(2025, 3, 14, 9, 0, tzinfo=UTC).timestamp() * 1000)
    for n in range(1, 31):  # one a minute, 09:01 to 09:30 on 14 March 2025
        write(gw, "8008", f"Question {n}", at=first + n * 60_000)

    open_inbox(page, gw)
    conversation = page.get_by_test_id("conversation")
    expect(conversation.get_by_test_id("preview")).to_have_text("Question 30")
    conversation.click()
    texts = page.get_by_test_id("message-text")
    expect(texts).to_have_count(25)
    expect(texts.first).to_have_text("Question 6")
    expect(texts.last).to_have_text("Question 30")
    expect(texts.last).to_be_in_viewport()  # opened at its end
    expect(page.get_by_test_id("message-time").last).to_have_text("14 Mar 2025, 09:30")
    expect(page.get_by_test_id("thread-start")).to_have_count(0)

    page.get_by_test_id("load-older").click()
    expect(texts).to_have_count(30)
    expect(texts.first).to_have_text("Question 1")
    expect(page.get_by_test_id("message-time").first).to_have_text("14 Mar 2025, 09:01")
    expect(page.get_by_test_id("thread-start")).to_have_text("Start of the conversation")
    expect(page.get_by_test_id("load-older")).to_have_count(0)
    expect(texts.filter(has_text="Question 6")).to_be_in_viewport()  # the reader's place is kept
    assert texts.all_inner_texts() == [f"Question {n}" for n in range(1, 31)]


def test_unread_filter_and_search_by_name(start_gateway, graph, page):
    from playwright.sync_api import expect

    gw = inbox(start_gateway, graph)
    for psid, first, last in [("1001", "Ada", "Lovelace"), ("1002", "Alan", "Turing"),
                              ("1003", "Grace", "Hopper")]:
        graph.add_profile(psid, first, last)
        write(gw, psid, f"Hello from {first}")
    open_inbox(page, gw)
    conversations = page.get_by_test_id("conversation")
    expect(conversations).to_have_count(3)
    for name in ("Ada Lovelace", "Alan Turing", "Grace Hopper"):
        expect(conversation_named(page, name)).to_be_visible()

    # Ada's is read (opened), then Grace's is open: unread only leaves Alan's, and Grace's (open).
    conversation_named(page, "Ada Lovelace").click()
    expect(page.get_by_test_id("message-text")).to_have_text("Hello from Ada")
    conversation_named(page, "Grace Hopper").click()
    expect(page.get_by_test_id("message-text")).to_have_text("Hello from Grace")
    unread = page.get_by_test_id("filter-unread")
    unread.click()
    expect(unread).to_have_attribute("aria-pressed", "true")
    expect(conversations).to_have_count(2)
    expect(conversation_named(page, "Ada Lovelace")).to_have_count(0)
    expect(conversation_named(page, "Alan Turing").get_by_test_id("unread")).to_have_text("1")

    # Ada writes again: her conversation comes back into the unread list, live.
    write(gw, "1001", "Are you there?")
    expect(conversation_named(page, "Ada Lovelace").get_by_test_id("unread")).to_have_text("1")
    expect(conversations).to_have_count(3)
    unread.click()
    expect(unread).to_have_attribute("aria-pressed", "false")

    # Search by a part of the name, any case.
    search = page.get_by_test_id("search")
    search.fill("TUR")
    expect(conversations).to_have_count(1)
    expect(conversations).to_contain_text("Alan Turing")
    search.fill("zzz")
    expect(page.get_by_test_id("no-conversations")).to_have_text(
        "No conversations with “zzz” in the name.")
    search.fill("a")  # Ada Lovelace, Alan Turing, Grace Hopper: all have an a
    expect(conversations).to_have_count(3)
    unread.click()  # and unread: Alan's, and Grace's, which is open
    expect(conversation_named(page, "Ada Lovelace")).to_have_count(1)  # written to again
    search.fill("ada")
    expect(conversations).to_have_count(1)
    expect(search).to_be_focused()  # typing carries on while the list changes
    search.fill("")
    unread.click()
    expect(conversations).to_have_count(3)


def test_tags_are_shown_and_set(start_gateway, graph, page):
    from playwright.sync_api import expect

    gw = inbox(start_gateway, graph)
    graph.add_profile("2001", "Ada", "Lovelace")
    graph.add_profile("2002", "Alan", "Turing")
    write(gw, "2001", "My order is late")
    write(gw, "2002", "Invoice please")
    open_inbox(page, gw)

    # A new tag, in red, on Ada's conversation: shown in the thread and in the list.
    conversation_named(page, "Ada Lovelace").click()
    thread_tags = page.get_by_test_id("thread-tags")
    page.get_by_test_id("tag-input").fill("VIP")
    page.get_by_test_id("tag-color").select_option("RED")
    page.get_by_test_id("tag-add").click()
    expect(thread_tags.get_by_test_id("tag")).to_have_text(["VIP×"])
    expect(thread_tags.get_by_test_id("tag")).to_have_class(re.compile(r"\bred\b"))
    expect(conversation_named(page, "Ada Lovelace").get_by_test_id("tag")).to_have_text("VIP")
    page.get_by_test_id("tag-input").fill("Billing")
    page.get_by_test_id("tag-color").select_option("GREEN")
    page.get_by_test_id("tag-input").press("Enter")
    expect(thread_tags.get_by_test_id("tag")).to_have_count(2)

    # Alan's gets the existing VIP tag, chosen by name: no second tag is made.
    conversation_named(page, "Alan Turing").click()
    expect(thread_tags.get_by_test_id("tag")).to_have_count(0)
    page.get_by_test_id("tag-input").fill("vip")
    page.get_by_test_id("tag-add").click()
    expect(conversation_named(page, "Alan Turing").get_by_test_id("tag")).to_have_text("VIP")
    tags = gw.post("/tags.list").json()["data"]
    assert sorted((t["name"], t["color"]) for t in tags) == [("Billing", "tag-green"),
                                                             ("VIP", "tag-red")]

    # Untagged again: gone from the thread, the list and the gateway.
    thread_tags.get_by_role("button", name="Remove the tag VIP").click()
    expect(conversation_named(page, "Alan Turing").get_by_test_id("tag")).to_have_count(0)
    expect(thread_tags.get_by_test_id("tag")).to_have_count(0)
    alan = conversation_named(page, "Alan Turing").get_attribute("data-id")
    info = gw.post("/conversations.info", {"conversation_id": alan}).json()
    assert info["metadata"]["tags"] == {}
    expect(conversation_named(page, "Ada Lovelace").get_by_test_id("tag")).to_have_text(
        ["Billing", "VIP"])  # by name


def test_disconnecting_a_page_asks_first(start_gateway, graph, page):
    from playwright.sync_api import expect

    gw = inbox(start_gateway, graph)
    graph.add_profile("3001", "Ada", "Lovelace")
    write(gw, "3001", "Hello")
    open_inbox(page, gw)
    page.get_by_test_id("conversation").click()
    expect(page.get_by_test_id("reply-input")).to_be_enabled()

    # Cancel: nothing happens.
    page.get_by_role("button", name="Disconnect Corner Bakery").click()
    dialog = page.get_by_test_id("confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Disconnect Corner Bakery?")
    page.get_by_test_id("confirm-no").click()
    expect(dialog).to_be_hidden()
    assert [c["source_channel_id"] for c in gw.post("/channels.list").json()["data"]] == [PAGE]
    assert not graph.calls_of("unsubscribe")

    # Confirmed: the page is gone, its conversation stays and says it cannot be answered.
    page.get_by_test_id("disconnect").click()
    expect(dialog).to_be_visible()
    page.screenshot(path=str(OUTPUT / "inbox-disconnect-confirm.png"))
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("channel")).to_have_count(0)
    expect(page.get_by_text("No pages connected yet")).to_be_visible()
    assert gw.post("/channels.list").json()["data"] == []
    assert len(graph.calls_of("unsubscribe")) == 1
    expect(page.get_by_test_id("conversation")).to_have_count(1)
    expect(page.get_by_test_id("disconnected")).to_be_visible()
    expect(page.get_by_test_id("reply-input")).to_be_disabled()

    # Connected again with the form: the thread can be answered again.
    form = page.get_by_test_id("connect-form")
    form.get_by_label("Page id").fill(PAGE)
    form.get_by_label("Page access token").fill("EAAbrowser")
    form.get_by_role("button", name="Connect").click()
    expect(page.get_by_test_id("channel")).to_contain_text("Corner Bakery")
    expect(page.get_by_test_id("disconnected")).to_have_count(0)
    expect(page.get_by_test_id("reply-input")).to_be_enabled()


def test_the_websocket_drops_and_comes_back(start_gateway, graph, page):
    """The gateway restarts: the inbox says so, then fetches what came in while it was away."""
    from playwright.sync_api import expect

    gw = inbox(start_gateway, graph)
    graph.add_profile("4001", "Ada", "Lovelace")
    graph.add_profile("4002", "Alan", "Turing")
    write(gw, "4001", "Before the restart")
    # A second process on the same database takes the webhooks while the first one is down.
    other = start_gateway(database=gw.env["MONGODB_DATABASE"])
    open_inbox(page, gw)
    page.get_by_test_id("conversation").click()
    expect(page.get_by_test_id("message-text")).to_have_text("Before the restart")
    banner = page.get_by_test_id("connection")
    expect(banner).to_be_hidden()

    gw.stop()
    expect(banner).to_have_text("Reconnecting… Live updates are paused.")
    write(other, "4001", "Sent while the inbox was away")
    write(other, "4002", "A new conversation meanwhile")
    wait_for(lambda: len(other.post("/conversations.list").json()["data"]) == 2)
    page.screenshot(path=str(OUTPUT / "inbox-reconnecting.png"))
    assert page.get_by_test_id("message").count() == 1  # nothing could arrive

    gw.start()  # the same port and database
    expect(banner).to_have_text("Live again.", timeout=15_000)
    expect(page.get_by_test_id("message-text").last).to_have_text("Sent while the inbox was away")
    expect(conversation_named(page, "Alan Turing").get_by_test_id("preview")).to_have_text(
        "A new conversation meanwhile")
    expect(page.get_by_test_id("conversation")).to_have_count(2)
    page.screenshot(path=str(OUTPUT / "inbox-live-again.png"))
    expect(banner).to_be_hidden()

    # Live again: a message now arrives without a reload.
    write(gw, "4001", "After the restart")
    expect(page.get_by_test_id("message-text").last).to_have_text("After the restart")

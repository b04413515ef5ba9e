"""The inbox in a real browser: Debian's Chromium, headless, driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gateway.config import DEFAULT_INBOX_DIR
from gateway.sources.facebook.signature import sign
from tests import payloads
from tests.conftest import APP_SECRET, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(os.environ.get("E2E_OUTPUT_DIR", Path(__file__).resolve().parent.parent / "test-output"))

pytestmark = [
    pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs it)"),
    pytest.mark.skipif(not (Path(DEFAULT_INBOX_DIR) / "index.html").is_file(),
                       reason="the inbox is not built (cd frontend-sample && npm ci && npm run build)"),
]

TOKEN = "browser-token"


def test_a_person_uses_the_live_inbox(start_gateway, graph):
    from playwright.sync_api import expect, sync_playwright

    gw = start_gateway(SYSTEM_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    graph.add_page("4242001", "EAAbrowser", name="Corner Bakery")
    graph.add_profile("7007", "Marie", "Curie")
    assert gw.post("/channels.facebook.connect", {"page_id": "4242001", "page_token": "EAAbrowser"},
                   headers=auth).status_code == 200

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        try:
            page.goto(gw.url + "/inbox/")
            # The gateway has a token: the inbox asks for it, and keeps it for the session only.
            page.get_by_test_id("token-input").fill(TOKEN)
            page.get_by_test_id("token-input").press("Enter")
            expect(page.get_by_test_id("channel")).to_contain_text("Corner Bakery")
            expect(page.get_by_text("No conversations yet")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('messenger-gateway-token')") == TOKEN
            assert page.evaluate("localStorage.length") == 0

            # Someone writes to the page: the conversation appears without a reload.
            body = json.dumps(payloads.envelope("4242001", payloads.text(
                "4242001", "7007", "Do you have croissants today?"))).encode()
            response = gw.http.post("/facebook", content=body,
                                    headers={"X-Hub-Signature-256": sign(APP_SECRET, body)})
            assert response.status_code == 200
            conversation = page.get_by_test_id("conversation")
            expect(conversation.get_by_test_id("preview")).to_have_text("Do you have croissants today?")
            expect(conversation.get_by_test_id("unread")).to_have_text("1")
            expect(conversation).to_contain_text("Marie Curie", timeout=10_000)

            # Opening it shows the thread and marks it read.
            conversation.click()
            expect(page.get_by_test_id("message")).to_have_text("Do you have croissants today?")
            conversation_id = conversation.get_attribute("data-id")
            wait_for(lambda: gw.post("/conversations.info", {"conversation_id": conversation_id},
                                     headers=auth).json()["metadata"]["unread_count"] == 0)
            expect(page.get_by_test_id("unread")).to_have_count(0)

            # A reply goes pending, then delivered, live.
            graph.delays["send"] = 0.5
            page.get_by_test_id("reply-input").fill("Yes, fresh from the oven!")
            page.get_by_test_id("reply-send").click()
            reply = page.get_by_test_id("message").filter(has_text="Yes, fresh from the oven!")
            expect(reply.get_by_test_id("state")).to_have_text("pending")
            expect(reply.get_by_test_id("state")).to_have_text("delivered", timeout=10_000)
            [call] = graph.calls_of("send")
            assert call.json["message"]["text"] == "Yes, fresh from the oven!"

            # A reply Meta refuses shows why.
            graph.fail("send", "outside_window")
            page.get_by_test_id("reply-input").fill("Are you still there?")
            page.get_by_test_id("reply-send").click()
            refused = page.get_by_test_id("message").filter(has_text="Are you still there?")
            expect(refused.get_by_test_id("state")).to_have_text(
                "failed: (#10) This message is sent outside of allowed window.", timeout=10_000)

            # The person answers while the thread is open: it appears in the thread.
            body = json.dumps(payloads.envelope("4242001", payloads.text(
                "4242001", "7007", "Great, see you soon"))).encode()
            gw.http.post("/facebook", content=body,
                         headers={"X-Hub-Signature-256": sign(APP_SECRET, body)})
            expect(page.get_by_test_id("message").last).to_have_text("Great, see you soon")
            expect(conversation.get_by_test_id("preview")).to_have_text("Great, see you soon")
            expect(page.get_by_test_id("unread")).to_have_count(0)  # read: the thread is open
            page.screenshot(path=str(OUTPUT / "inbox.png"), full_page=True)
        finally:
            browser.close()

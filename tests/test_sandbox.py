"""The sandbox: `messenger-gateway --sandbox` as a person starts it, a customer writing on its
/sandbox page (headless Chromium), the inbox API answering; and `messenger-gateway simulate`
posting signed webhooks to a gateway."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.sandbox.server import DEMO_PAGE_ID, psid_of
from tests.conftest import APP_SECRET, connect_page, free_port, wait_for

SCRIPT = Path(sys.executable).with_name("messenger-gateway")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "gateway"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(os.environ.get("E2E_OUTPUT_DIR", Path(__file__).resolve().parent.parent / "test-output"))
# Nothing of the test environment's Meta or store settings: the sandbox makes up its own.
CLEARED = ("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_WEBHOOK_SECRET",
           "FACEBOOK_GRAPH_API_URL", "MONGODB_URL", "MONGODB_DATABASE", "SYSTEM_TOKEN", "HOST",
           "PORT")


class Sandbox:
    """`messenger-gateway --sandbox` on a free port, its store in `data`."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sandbox:
        env = {key: value for key, value in os.environ.items() if key not in CLEARED}
        env.update({"DATA_DIR": str(self.data / "store"), "WORKER_POLL_SECONDS": "0.1",
                    "RETRY_BASE_SECONDS": "0.05", "RETRY_MAX_SECONDS": "0.5"})
        log = open(self.data / "sandbox.log", "ab")
        self.proc = subprocess.Popen([*COMMAND, "--sandbox", "--port", str(self.port)],
                                     env=env, stdout=log, stderr=log)
        log.close()
        # Up once the demo page is connected, as the sandbox does it at start-up.
        wait_for(lambda: self._connected() or self.proc.poll() is not None, timeout=30,
                 interval=0.1)
        assert self.proc.poll() is None, self.log()
        return self

    def _connected(self) -> bool:
        try:
            channels = self.post("/channels.list").json()["data"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return any(c["source_channel_id"] == DEMO_PAGE_ID and c["connected"] for c in channels)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)

    def log(self) -> str:
        return (self.data / "sandbox.log").read_text(errors="replace")

    def post(self, route: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(route, json=body if body is not None else {}, **kwargs)

    def conversation_of(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.post("/conversations.list").json()["data"]
                     if c["contact"]["display_name"] == name), None)

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.post("/messages.list", {"conversation_id": conversation_id}).json()["data"]

    def reply(self, conversation_id: str, text: str) -> dict[str, Any]:
        """Send `text` from the page; the message once the sender worker is done with it."""
        sent = self.post("/messages.send", {"conversation_id": conversation_id,
                                            "message": {"text": text}})
        assert sent.status_code == 200, sent.text
        return wait_for(lambda: next((m for m in self.messages(conversation_id)
                                      if m["id"] == sent.json()["id"]
                                      and m["state"] != "pending"), None))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[Sandbox]:
    process = Sandbox(tmp_path_factory.mktemp("sandbox")).start()
    yield process
    process.stop()


def test_a_customer_writes_and_the_page_answers(sandbox):
    """The round trip through the sandbox's API: the person's message reaches the inbox, with
    the name the simulated Graph API gives; the page's reply reaches the person's thread."""
    ada = psid_of("Ada Lovelace")
    written = sandbox.post("/sandbox/api/message", {"psid": ada, "text": "Open on Sunday?"})
    assert written.status_code == 200, written.text
    assert written.json()["gateway"] == "EVENT_RECEIVED"
    conversation = wait_for(lambda: sandbox.conversation_of("Ada Lovelace"))
    assert conversation["last_message"]["content"]["message"]["text"] == "Open on Sunday?"
    assert conversation["metadata"]["unread_count"] == 1

    reply = sandbox.reply(conversation["id"], "Yes, from ten.")
    assert reply["state"] == "delivered"
    thread = sandbox.http.get("/sandbox/api/thread", params={"psid": ada}).json()["messages"]
    assert [(m["from"], m["text"]) for m in thread] == [
        ("person", "Open on Sunday?"), ("page", "Yes, from ten.")]
    assert thread[1]["mid"] == reply["metadata"]["source"]["id"]
    # The simulator's Facebook user manages the demo page, for exploring a user's pages.
    explored = sandbox.post("/channels.facebook.explore", {"auth_token": "sandbox-user-token"})
    assert [page["name"] for page in explored.json()["data"]] == ["Demo Shop"], explored.text


def test_the_simulator_fails_a_send_as_meta_does(sandbox):
    grace = psid_of("Grace Hopper")
    assert sandbox.post("/sandbox/api/message", {"psid": grace, "text": "Hello?"}).status_code == 200
    conversation = wait_for(lambda: sandbox.conversation_of("Grace Hopper"))
    told = sandbox.post("/sandbox/api/fail", {"mode": "outside_window"})
    assert told.json() == {"failing": ["outside_window"]}
    failed = sandbox.reply(conversation["id"], "Sorry for the wait")
    assert failed["state"] == "failed"
    assert failed["metadata"]["error"] == "(#10) This message is sent outside of allowed window."
    # Only that one: the next reply goes through, and the person sees only it.
    assert sandbox.reply(conversation["id"], "Still there?")["state"] == "delivered"
    thread = sandbox.http.get("/sandbox/api/thread", params={"psid": grace}).json()["messages"]
    assert [m["text"] for m in thread if m["from"] == "page"] == ["Still there?"]
    refused = sandbox.post("/sandbox/api/fail", {"mode": "no_such_mode"})
    assert refused.status_code == 400 and "outside_window" in refused.json()["message"]


def test_pages_elsewhere_cannot_drive_the_sandbox(sandbox):
    """Outside the gateway's auth, the sandbox is guarded against cross-site requests alike."""
    ada = psid_of("Ada Lovelace")
    foreign = sandbox.post("/sandbox/api/message", {"psid": ada, "text": "x"},
                           headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    simple = sandbox.http.post("/sandbox/api/message", content=f'{{"psid": "{ada}", "text": "x"}}',
                               headers={"Content-Type": "text/plain"})
    assert simple.status_code == 415
    assert sandbox.post("/sandbox/api/message", {"psid": "1", "text": "x"}).status_code == 404
    assert sandbox.post("/sandbox/api/message", {"psid": ada, "text": ""}).status_code == 400


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs it)")
def test_a_person_uses_the_customer_page(sandbox):
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        outside: list[str] = []
        page.on("request", lambda request: request.url.startswith(sandbox.url)
                or outside.append(request.url))
        try:
            # From the home page, as the README's quick start goes.
            page.goto(sandbox.url + "/")
            page.get_by_role("link", name="Sandbox").click()
            page.wait_for_url(sandbox.url + "/sandbox/")
            expect(page.get_by_test_id("person").first).to_have_text("Ada Lovelace")

            # A new person, named here, writes to the page: the inbox lists them by that name.
            page.get_by_test_id("person-name").fill("Alan Turing")
            page.get_by_test_id("person-add").click()
            expect(page.get_by_test_id("person").filter(has_text="Alan Turing")) \
                .to_have_attribute("aria-pressed", "true")
            page.get_by_test_id("text").fill("Can I order a cake for Friday?")
            page.get_by_test_id("send").click()
            expect(page.get_by_test_id("message")).to_have_text(["Can I order a cake for Friday?"])
            conversation = wait_for(lambda: sandbox.conversation_of("Alan Turing"))
            assert conversation["last_message"]["content"]["message"]["text"] == \
                "Can I order a cake for Friday?"

            # The page answers from the inbox's API: the reply appears on the customer's page.
            reply = sandbox.reply(conversation["id"], "Of course! Which flavour?")
            answer = page.locator("[data-testid=message][data-from=page]")
            expect(answer).to_contain_text("Of course! Which flavour?")

            # The person reacts to it, and reads it: the gateway records both on the reply.
            answer.get_by_test_id("react").first.click()
            expect(answer.get_by_test_id("react").first).to_have_attribute("aria-pressed", "true")
            wait_for(lambda: sandbox.messages(conversation["id"])[0]["metadata"]
                     .get("reaction", {}).get("emoji") == "\u2764\ufe0f")
            page.get_by_test_id("read").click()
            expect(page.get_by_text("Seen")).to_be_visible()
            wait_for(lambda: sandbox.messages(conversation["id"])[0]["metadata"]["user_read"])
            assert sandbox.messages(conversation["id"])[0]["id"] == reply["id"]

            # Meta refuses the next reply: the inbox shows why, the person sees nothing.
            page.get_by_test_id("fail-mode").select_option("unavailable_user")
            page.get_by_test_id("fail").click()
            expect(page.get_by_text("Next replies fail: unavailable_user")).to_be_visible()
            failed = sandbox.reply(conversation["id"], "Hello?")
            assert failed["metadata"]["error"] == "(#551) This person isn't available right now."
            expect(page.get_by_test_id("message")).to_have_count(2)
            page.screenshot(path=str(OUTPUT / "sandbox.png"), full_page=True)
            assert outside == []  # nothing loaded from anywhere but the gateway
        finally:
            browser.close()


def test_a_restart_on_the_same_data_keeps_the_page_and_conversations(tmp_path):
    first = Sandbox(tmp_path).start()
    ada = psid_of("Ada Lovelace")
    try:
        assert first.post("/sandbox/api/message", {"psid": ada, "text": "one"}).status_code == 200
        wait_for(lambda: first.conversation_of("Ada Lovelace"))
    finally:
        first.stop()
    second = Sandbox(tmp_path)
    second.port, second.url = first.port, first.url  # as a person restarts it: the same address
    second.http = first.http
    second.start()
    try:
        [channel] = second.post("/channels.list").json()["data"]
        assert channel["connected"] and channel["source_channel_id"] == DEMO_PAGE_ID
        assert second.post("/sandbox/api/message", {"psid": ada, "text": "two"}).status_code == 200
        conversation = wait_for(lambda: (c := second.conversation_of("Ada Lovelace"))
                                and c["metadata"]["unread_count"] == 2 and c)
        assert len(second.post("/conversations.list").json()["data"]) == 1
        assert second.reply(conversation["id"], "Hi again")["state"] == "delivered"
    finally:
        second.stop()


@pytest.mark.parametrize("args, env", [
    (["--host", "0.0.0.0", "--allow-open-api"], {}),
    ([], {"SYSTEM_TOKEN": "a-token"}),
])
def test_the_sandbox_runs_on_loopback_without_a_token_only(args, env):
    result = subprocess.run([*COMMAND, "--sandbox", *args], capture_output=True, text=True,
                            timeout=30, env={**os.environ, **env})
    assert result.returncode != 0
    assert "the sandbox runs as the gateway does without SYSTEM_TOKEN, on loopback only" \
        in result.stderr


def simulate(gw_url: str, *args: str, secret: str | None = APP_SECRET) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    if secret is not None:
        env["FACEBOOK_APP_SECRET"] = secret
    return subprocess.run([*COMMAND, "simulate", *args, "--url", gw_url], env=env,
                          capture_output=True, text=True, timeout=60)


def test_simulate_posts_signed_webhooks_to_a_gateway(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    graph.add_profile("4242", "Ada", "Lovelace")
    done = simulate(gateway.url, "message", "--text", "hi from a script", "--page", page,
                    "--sender", "4242", "--mid", "m_script_1")
    assert (done.returncode, done.stdout.strip()) == (0, "EVENT_RECEIVED"), done.stderr
    [conversation] = gateway.post("/conversations.list").json()["data"]
    assert conversation["last_message"]["content"]["message"]["text"] == "hi from a script"

    for event in (["reaction", "--mid", "m_script_1", "--emoji", "\U0001F44D"],
                  ["read"], ["postback", "--title", "Menu", "--payload", "MENU"]):
        done = simulate(gateway.url, *event, "--page", page, "--sender", "4242")
        assert done.returncode == 0, (event, done.stderr)
    [message] = [m for m in gateway.post("/messages.list", {
        "conversation_id": conversation["id"]}).json()["data"]
        if m["metadata"].get("source", {}).get("id") == "m_script_1"]
    assert message["metadata"]["reaction"]["emoji"] == "\U0001F44D"

    refused = simulate(gateway.url, "message", "--text", "forged", "--page", page,
                       secret="not-the-secret")
    assert refused.returncode == 1
    assert "403" in refused.stderr and "does not match the body" in refused.stderr
    unset = simulate(gateway.url, "message", "--text", "x", secret=None)
    assert unset.returncode != 0 and "FACEBOOK_APP_SECRET is not set" in unset.stderr
    down = simulate(f"http://127.0.0.1:{free_port()}", "read")
    assert down.returncode == 1 and "cannot post" in down.stderr


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs it)")
def test_the_first_five_minutes_a_round_trip_in_the_inbox_with_no_internet(sandbox):
    """The README's quick start, as a newcomer does it, with every request off loopback refused:
    the home page, the sandbox's customer writes, the inbox shows it live, the reply typed in
    the inbox reaches the customer's page."""
    from playwright.sync_api import expect, sync_playwright

    assert sandbox.post("/sandbox/api/fail", {"mode": ""}).status_code == 200  # none left over
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 760})
        blocked: list[str] = []

        def only_loopback(route: Any) -> None:
            if route.request.url.startswith(sandbox.url):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        try:
            inbox = context.new_page()
            inbox.goto(sandbox.url + "/")
            inbox.get_by_role("link", name="Inbox").click()
            expect(inbox.get_by_test_id("channel").first).to_be_visible()

            customer = context.new_page()
            customer.goto(sandbox.url + "/sandbox/")
            customer.get_by_test_id("person-name").fill("Hedy Lamarr")
            customer.get_by_test_id("person-add").click()
            customer.get_by_test_id("text").fill("Is the shop open on Sunday?")
            customer.get_by_test_id("send").click()

            # Live in the inbox, without a reload.
            row = inbox.get_by_test_id("conversation").filter(has_text="Hedy Lamarr")
            expect(row).to_contain_text("Is the shop open on Sunday?", timeout=15_000)
            row.click()
            inbox.get_by_test_id("reply-input").fill("Yes, from 10 to 4.")
            inbox.get_by_test_id("reply-send").click()

            answer = customer.locator("[data-testid=message][data-from=page]")
            expect(answer).to_contain_text("Yes, from 10 to 4.", timeout=15_000)
            expect(inbox.get_by_test_id("message").last).to_contain_text("Yes, from 10 to 4.")
            OUTPUT.mkdir(parents=True, exist_ok=True)
            inbox.screenshot(path=str(OUTPUT / "first-five-minutes-inbox.png"))
            customer.screenshot(path=str(OUTPUT / "first-five-minutes-sandbox.png"))
        finally:
            browser.close()
    assert blocked == [], f"asked for something off loopback: {blocked}"

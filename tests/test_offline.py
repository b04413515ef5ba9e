"""Everything a browser needs is served by the gateway itself: GraphiQL, the inbox and the home
page work in Chromium with every request off loopback blocked; the wheel carries the built
front-ends; start-up says once each what will not work."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.web import GRAPHIQL_PAGE, INBOX_DIR
from tests import payloads
from tests.conftest import VERIFY_TOKEN, wait_for

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(os.environ.get("E2E_OUTPUT_DIR", ROOT / "test-output"))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TOKEN = "offline-token"
needs_chromium = pytest.mark.skipif(not CHROMIUM,
                                    reason="Chromium is not installed (.ci/run installs it)")


class Offline:
    """A browser context that aborts every request off loopback, and remembers each one."""

    def __init__(self, context) -> None:
        self.blocked: list[tuple[str, str]] = []  # (resource type, URL)
        self.served: list[str] = []
        context.route("**/*", self.route)

    def route(self, route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            self.served.append(url)
            route.continue_()
        else:
            self.blocked.append((route.request.resource_type, url))
            route.abort("internetdisconnected")

    def assets_blocked(self) -> list[tuple[str, str]]:
        """What the page itself needed from off loopback. Pictures of pages and people are
        data, links Meta gives (the fake Graph API's are on img.example): an offline browser
        shows them missing, the page works all the same."""
        return [(kind, url) for kind, url in self.blocked
                if not (kind == "image" and urlsplit(url).hostname == "img.example")]


@contextmanager
def offline_page(name: str) -> Iterator[tuple[object, Offline]]:
    """A Chromium page with no internet; a screenshot of it is kept as `name`.png."""
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        offline = Offline(context)
        page = context.new_page()
        try:
            yield page, offline
            page.screenshot(path=str(OUTPUT / f"{name}.png"))
        finally:
            browser.close()


def set_editor(page, selector: str, text: str) -> None:
    """Replace what a GraphiQL editor holds, as pasted (no bracket auto-closing)."""
    page.locator(f"{selector} .CodeMirror >> visible=true").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


@needs_chromium
def test_graphiql_runs_a_query_and_a_subscription_with_no_internet(start_gateway, graph):
    from playwright.sync_api import expect

    gw = start_gateway(SYSTEM_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    graph.add_page("5151001", "EAAoffline", name="Harbour Cafe")
    assert gw.post("/channels.facebook.connect", {"page_id": "5151001",
                                                   "page_token": "EAAoffline"},
                   headers=auth).status_code == 200

    with offline_page("graphiql") as (page, offline):
        page.goto(gw.url + "/graphql")
        expect(page.locator(".graphiql-execute-button")).to_be_visible(timeout=15_000)
        response = page.locator(".graphiql-response")

        # Without the token the gateway refuses; with it set in the headers editor, it answers.
        set_editor(page, ".graphiql-query-editor", "{ channels { name sourceChannelId } }")
        page.locator(".graphiql-execute-button").click()
        expect(response).to_contain_text("Authorization: Bearer <token>")
        page.get_by_role("button", name="Headers").click()
        set_editor(page, ".graphiql-editor-tool", json.dumps(auth))
        page.locator(".graphiql-execute-button").click()
        expect(response).to_contain_text("Harbour Cafe")

        # A subscription over graphql-transport-ws, with the token in connection_init.
        set_editor(page, ".graphiql-query-editor",
                   "subscription { messageCreated { content: rawContent fromContact } }")
        page.locator(".graphiql-execute-button").click()
        wait_for(lambda: gw.http.get("/health").json()["subscribers"] > 0)
        gw.webhook(payloads.envelope("5151001", payloads.text(
            "5151001", "8008", "Is the terrace open?")))
        expect(response).to_contain_text("Is the terrace open?", timeout=10_000)
        expect(response).to_contain_text('"fromContact": true')

    assert offline.served, "the page loaded nothing from the gateway"
    assert not offline.blocked, f"GraphiQL asked for something off loopback: {offline.blocked}"


@needs_chromium
def test_the_inbox_shows_a_message_arriving_live_with_no_internet(start_gateway, graph):
    from playwright.sync_api import expect

    gw = start_gateway()
    graph.add_page("5151002", "EAAinbox", name="Dock Books")
    assert gw.post("/channels.facebook.connect", {"page_id": "5151002",
                                                   "page_token": "EAAinbox"}).status_code == 200

    with offline_page("inbox-offline") as (page, offline):
        page.goto(gw.url + "/inbox/")
        expect(page.get_by_text("Dock Books").first).to_be_visible(timeout=15_000)
        gw.webhook(payloads.envelope("5151002", payloads.text(
            "5151002", "9009", "Do you have maps of the coast?")))
        expect(page.get_by_text("Do you have maps of the coast?").first).to_be_visible(
            timeout=10_000)

    assert offline.served, "the page loaded nothing from the gateway"
    assert not offline.assets_blocked(), offline.assets_blocked()


@needs_chromium
def test_the_home_page_links_what_the_gateway_serves(gateway):
    from playwright.sync_api import expect

    with offline_page("home") as (page, offline):
        assert page.goto(gateway.url + "/").status == 200
        expect(page.get_by_role("heading", name="Messenger Gateway")).to_be_visible()
        hrefs = [link.get_attribute("href") for link in page.locator("a").all()]
        assert {"/inbox/", "/graphql", "/openapi.json", "/health"} <= set(hrefs)
        # Linked only when it is mounted: this gateway was started without the sandbox.
        assert "/sandbox/" not in hrefs
        for href in hrefs:
            page.goto(gateway.url + "/")
            with page.expect_navigation():
                page.locator(f'a[href="{href}"]').click()
            assert page.url == gateway.url + href
            assert page.evaluate("document.readyState") in ("interactive", "complete")
            answer = gateway.http.get(href, headers={"Accept": "text/html"})
            assert answer.status_code == 200, (href, answer.text[:200])

    assert not offline.blocked, f"a page asked for something off loopback: {offline.blocked}"


def test_graphiql_and_the_inbox_are_served_from_the_package(gateway):
    page = gateway.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.content == GRAPHIQL_PAGE.read_bytes()
    # One page with its scripts inline: nothing fetched from anywhere, not even from here.
    assert not re.search(rb"<(script|link)[^>]+(src|href)=", page.content)
    assert b"unpkg.com" not in page.content and b"jsdelivr" not in page.content
    # A client asking for JSON still gets GraphQL's answer to a GET.
    answer = gateway.http.get("/graphql", params={"query": "{ channels { id } }"},
                              headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.json() == {"data": {"channels": []}}

    inbox = gateway.http.get("/inbox/")
    assert inbox.status_code == 200
    assert inbox.text == (INBOX_DIR / "index.html").read_text()
    for asset in re.findall(r'(?:src|href)="(/inbox/[^"]+)"', inbox.text):
        assert gateway.http.get(asset).status_code == 200, asset


def test_an_inbox_built_while_the_gateway_runs_is_served_at_once(start_gateway, tmp_path):
    build = tmp_path / "inbox-build"
    build.mkdir()
    gw = start_gateway(INBOX_DIR=str(build))
    missing = gw.http.get("/inbox/")
    assert missing.status_code == 404 and "npm run build" in missing.text
    assert gw.http.get("/inbox").status_code == 307

    (build / "index.html").write_text("<!doctype html><title>inbox</title>")
    assert gw.http.get("/inbox/").text == "<!doctype html><title>inbox</title>"


def test_start_up_says_once_each_what_will_not_work(start_gateway):
    bare = start_gateway(FACEBOOK_APP_SECRET="", FACEBOOK_WEBHOOK_SECRET="")
    log = bare.log()
    assert f"listening on http://127.0.0.1:{bare.port} (home page /, inbox /inbox/, " \
           "GraphiQL /graphql)" in log
    warnings = {
        "FACEBOOK_APP_SECRET is not set: every webhook is refused (503)": (
            lambda: bare.webhook(payloads.envelope("1", []), secret="any").status_code == 503),
        "FACEBOOK_WEBHOOK_SECRET is not set: Meta's verification challenge": (
            lambda: bare.http.get("/facebook", params={
                "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "42"}).status_code == 403),
        "SYSTEM_TOKEN is not set: the API is open": (
            lambda: bare.post("/channels.list").status_code == 200),
    }
    for warning, holds in warnings.items():
        assert log.count(warning) == 1, (warning, log)
        assert holds(), warning  # the warning tells the truth
    assert [line for line in log.splitlines() if "WARNING" in line] != []

    configured = start_gateway(SYSTEM_TOKEN=TOKEN)
    for warning in warnings:
        assert warning not in configured.log()


def test_the_wheel_carries_graphiql_and_the_inbox(tmp_path):
    """Built from a copy of the sources, as `pip wheel .` builds it for an installer."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "gateway", source / "gateway",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "-w", str(tmp_path / "w"),
                    "--no-deps", "-q"], check=True, timeout=120)
    [wheel] = (tmp_path / "w").glob("messenger_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    built = {"gateway/" + str(path.relative_to(ROOT / "gateway"))
             for path in (ROOT / "gateway" / "web").rglob("*")
             if path.is_file() and "__pycache__" not in path.parts}
    assert "gateway/web/graphiql/index.html" in built
    assert "gateway/web/inbox/index.html" in built
    assert any(name.startswith("gateway/web/inbox/assets/") for name in built)
    assert built <= names, built - names



def test_the_home_page_loads_without_a_token_and_opens_nothing_else(start_gateway):
    """A browser sends no token for a page it opens: `/` is public, its links stay guarded."""
    gw = start_gateway(SYSTEM_TOKEN="home-token")
    home = gw.http.get("/", headers={"Accept": "text/html"})
    assert home.status_code == 200 and "/graphql" in home.text
    assert gw.http.post("/tags.list").status_code == 401
    assert gw.http.get("/openapi.json").status_code == 401

"""Browser access as Airy's clients use it: CORS for ALLOWED_ORIGINS, and the `airy_auth_token`
cookie wherever the Bearer header is accepted (Airy's browser client sends no Authorization)."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.ws import PROTOCOLS, TRANSPORT_WS, GraphQLSocket

INBOX = "https://inbox.example.com"
EVIL = "https://evil.example"
TOKEN = "cookie-Tok-7Yq2-Lm4P"
COOKIE = {"Cookie": f"airy_auth_token={TOKEN}"}
# What Airy's API allows a page to send (see ../shared/reference/airy-api.md, "Browser access").
AIRY_HEADERS = {"accept", "content-type", "content-length", "accept-encoding", "x-csrf-token",
                "authorization", "x-requested-with", "x-xsrf-token"}


@pytest.fixture(scope="module")
def browser_gateway(nx_url, graph_server, tmp_path_factory):
    from tests.conftest import APP_ID, APP_SECRET, VERIFY_TOKEN, GatewayProcess

    process = GatewayProcess({
        "MONGODB_URL": nx_url, "MONGODB_DATABASE": f"t_browser_{free_port()}",
        "FACEBOOK_APP_ID": APP_ID, "FACEBOOK_APP_SECRET": APP_SECRET,
        "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN, "FACEBOOK_GRAPH_API_URL": graph_server.url,
        "SYSTEM_TOKEN": TOKEN, "ALLOWED_ORIGINS": f"{INBOX},http://localhost:8080",
        "LOG_LEVEL": "INFO",
    }, tmp_path_factory.mktemp("browser") / "gateway.log").start()
    yield process
    process.stop()


def preflight(gw, origin: str, path: str = "/conversations.list", headers: str = "content-type"):
    return gw.http.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers})


@pytest.mark.parametrize("path", ["/conversations.list", "/messages.send", "/graphql"])
def test_a_preflight_from_an_allowed_origin_is_answered_as_airy_does_without_a_token(
        browser_gateway, path):
    answer = preflight(browser_gateway, INBOX, path, headers="content-type, x-xsrf-token")
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == INBOX
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["access-control-allow-methods"] == "POST, GET"
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert AIRY_HEADERS <= allowed


def test_a_preflight_from_another_origin_is_refused_with_403(browser_gateway):
    answer = preflight(browser_gateway, EVIL)
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers
    assert "ALLOWED_ORIGINS" in answer.json()["message"]


def test_the_cookie_authenticates_a_call_from_an_allowed_origin(browser_gateway):
    gw = browser_gateway
    created = gw.http.post("/tags.create", json={"name": "vip", "color": "tag-red"},
                           headers={**COOKIE, "Origin": INBOX})
    assert created.status_code == 201, created.text
    listed = gw.http.post("/tags.list", headers={**COOKIE, "Origin": INBOX})
    assert listed.status_code == 200
    assert "vip" in {tag["name"] for tag in listed.json()["data"]}
    # The page may read the answer, and send its cookie (credentials).
    assert listed.headers["access-control-allow-origin"] == INBOX
    assert listed.headers["access-control-allow-credentials"] == "true"
    # Among other cookies, as a browser sends them; and from API clients without an Origin.
    mixed = {"Cookie": f"theme=dark; airy_auth_token={TOKEN}; lang=en"}
    assert gw.http.post("/tags.list", headers=mixed).status_code == 200


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"Cookie": "airy_auth_token="}, 401),
    ({"Cookie": "airy_auth_token=wrong-token"}, 403),
    ({"Cookie": "other=1"}, 401),
    ({"Cookie": 'airy_auth_token="unterminated; ;;=='}, 401),
    ({"Cookie": f"airy_auth_token={TOKEN}x"}, 403),
])
def test_a_missing_or_wrong_cookie_is_refused_and_the_page_can_read_why(
        browser_gateway, headers, status):
    answer = browser_gateway.http.post("/tags.list", headers={**headers, "Origin": INBOX})
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    assert answer.headers["access-control-allow-origin"] == INBOX


def test_the_cookie_does_not_open_the_api_to_other_sites(browser_gateway):
    """A page elsewhere makes the browser send the cookie too: cross-site protection stays."""
    gw = browser_gateway
    before = gw.http.post("/tags.list", headers=COOKIE).json()["data"]
    foreign = gw.http.post("/tags.create", json={"name": "evil", "color": "tag-red"},
                           headers={**COOKIE, "Origin": EVIL})
    assert foreign.status_code == 403
    form = gw.http.post("/tags.create", content='{"name": "evil", "color": "tag-red"}',
                        headers={**COOKIE, "Content-Type": "text/plain"})
    assert form.status_code == 415
    assert gw.http.post("/tags.list", headers=COOKIE).json()["data"] == before


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_graphql_websocket_is_authenticated_by_the_cookie_on_its_upgrade(
        browser_gateway, protocol):
    with GraphQLSocket(browser_gateway.url, protocol,
                       headers={**COOKIE, "Origin": INBOX}) as ws:
        assert ws.init({})["type"] == "connection_ack"
    with GraphQLSocket(browser_gateway.url, protocol,
                       headers={"Cookie": "airy_auth_token=wrong", "Origin": INBOX}) as ws:
        if protocol == TRANSPORT_WS:
            ws.send({"type": "connection_init", "payload": {}})
            assert ws.closed_code() == 4403
        else:
            reply = ws.init({})
            assert reply == {"type": "connection_error",
                             "payload": {"message": "the API token is not valid"}}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FETCH = """async ([url, body]) => {
    try {
        const answer = await fetch(url, {method: "POST", credentials: "include",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
        return {status: answer.status, body: await answer.json()};
    } catch (error) { return {failed: String(error)}; }
}"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>a page</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None: ...


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """A web page on a loopback origin of its own (a port is an origin)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs it)")
def test_a_page_on_an_allowed_origin_calls_the_api_in_a_real_browser_with_the_cookie(
        start_gateway):
    """Chromium enforces CORS itself: the page on the allowed origin sends a preflight, then its
    call with the cookie, and reads the answer; a page on another origin cannot."""
    from playwright.sync_api import sync_playwright

    with page_server() as allowed, page_server() as other, sync_playwright() as playwright:
        gw = start_gateway(SYSTEM_TOKEN=TOKEN, ALLOWED_ORIGINS=allowed)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            # Ports do not make sites: the gateway's cookie goes with calls from both pages.
            context.add_cookies([{"name": "airy_auth_token", "value": TOKEN, "url": gw.url}])
            page = context.new_page()
            page.goto(allowed + "/")
            created = page.evaluate(FETCH, [gw.url + "/tags.create",
                                            {"name": "from-the-page", "color": "tag-blue"}])
            assert created.get("status") == 201, created
            listed = page.evaluate(FETCH, [gw.url + "/tags.list", {}])
            assert "from-the-page" in {tag["name"] for tag in listed["body"]["data"]}

            page.goto(other + "/")
            refused = page.evaluate(FETCH, [gw.url + "/tags.create",
                                            {"name": "from-elsewhere", "color": "tag-red"}])
            assert "failed" in refused, refused  # the preflight got 403: fetch rejects
        finally:
            browser.close()
    names = {tag["name"] for tag in gw.http.post(
        "/tags.list", headers={"Authorization": f"Bearer {TOKEN}"}).json()["data"]}
    assert names == {"from-the-page"}

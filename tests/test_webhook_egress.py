"""Outgoing webhooks reach public addresses only: checked on what a name resolves to, at delivery.

The address check and the transport are also tested in-process (they import gateway.egress
inside each test, so the module's absence fails those tests alone).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpcore
import httpx
import pytest

from tests import payloads
from tests.conftest import connect_page, wait_for

REFUSED = {
    "loopback": ["127.0.0.1", "127.255.255.254", "::1"],
    "private": ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1",
                "fd12:3456::1", "192.0.2.1", "198.18.0.1", "2001:db8::1", "64:ff9b:1::1"],
    "link-local": ["169.254.169.254", "169.254.0.1", "fe80::1"],
    "multicast": ["224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1"],
    "unspecified": ["0.0.0.0", "::"],
    "shared address space": ["100.64.0.1", "100.127.255.255"],
    "reserved": ["240.0.0.1", "255.255.255.255", "::127.0.0.1", "100::1"],
    "site-local": ["fec0::1"],
    # IPv6 forms of IPv4 addresses: mapped, 6to4, NAT64
    "loopback, embedded in IPv6": ["::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::7f00:1"],
    "private, embedded in IPv6": ["::ffff:10.0.0.1", "2002:c0a8:101::1", "64:ff9b::a00:1"],
    "link-local, embedded in IPv6": ["::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"],
    "shared address space, embedded in IPv6": ["::ffff:100.64.0.1"],
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.32.0.1",
          "192.169.0.1", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8",
          "64:ff9b::808:808", "2002:808:808::1"]
STRICT = {"WEBHOOK_ALLOW_PRIVATE": "0", "WEBHOOK_TIMEOUT_SECONDS": "2",
          "WEBHOOK_RETRY_SECONDS": "2"}


@pytest.mark.parametrize("reason, address", [(r, a) for r, addresses in REFUSED.items()
                                             for a in addresses])
def test_non_public_addresses_are_refused_with_their_kind(reason, address):
    from gateway.egress import why_not_public

    assert why_not_public(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    from gateway.egress import why_not_public

    assert why_not_public(ipaddress.ip_address(address)) is None


class Recording(httpcore.AsyncNetworkBackend):
    """Where connections are made to (they lead nowhere)."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return httpcore.AsyncMockStream([])


def test_a_name_is_resolved_once_and_the_checked_address_is_connected():
    from gateway.egress import NotPublic, PublicAddressesOnly

    async def scenario() -> None:
        recording = Recording()
        with pytest.raises(NotPublic, match=r"127\.0\.0\.1 \(from localhost\) is not public "
                                            r"\(loopback\).*WEBHOOK_ALLOW_PRIVATE=1"):
            await PublicAddressesOnly(recording).connect_tcp("localhost", 80)
        assert recording.hosts == []  # nothing was connected to
        # The address connected to is the one resolved (and checked), never the name again.
        await PublicAddressesOnly(recording, refuse=lambda address: None).connect_tcp(
            "localhost", 80)
        assert recording.hosts[0] in ("127.0.0.1", "::1")
        await PublicAddressesOnly(recording).connect_tcp("8.8.8.8", 443)
        assert recording.hosts[-1] == "8.8.8.8"
        with pytest.raises(NotPublic, match=r"address ::ffff:7f00:1 is not public"):
            await PublicAddressesOnly(recording).connect_tcp("::ffff:127.0.0.1", 80)

    asyncio.run(scenario())


def test_the_transport_refuses_before_connecting_unless_allowed(receiver):
    from gateway.egress import webhook_transport

    async def post(allow_private: bool) -> httpx.Response:
        async with httpx.AsyncClient(transport=webhook_transport(allow_private)) as client:
            return await client.post(f"{receiver.url}/direct", json={})

    with pytest.raises(httpx.ConnectError, match="is not public"):
        asyncio.run(post(False))
    assert receiver.received == []
    assert asyncio.run(post(True)).status_code == 200
    assert [r.path for r in receiver.received] == ["/direct"]


def own_hostname() -> str:
    """This machine's name, which resolves to one of its own (loopback or private) addresses."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"the host name {name} does not resolve here")
    if any(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
        pytest.skip(f"the host name {name} resolves to a public address here")
    return name


def info(gw, hook: dict) -> dict:
    return gw.post("/webhooks.info", {"id": hook["id"]}).json()


def test_receivers_on_non_public_addresses_get_nothing_and_info_says_why(start_gateway, graph,
                                                                           receiver):
    gw = start_gateway(**STRICT)
    port = receiver.url.rsplit(":", 1)[1]
    for url in (f"{receiver.url}/hook", f"http://[::1]:{port}/hook",
                f"http://[::ffff:127.0.0.1]:{port}/hook", "http://10.0.0.1/hook",
                "http://169.254.169.254/latest/meta-data/", f"http://0.0.0.0:{port}/hook"):
        refused = gw.post("/webhooks.subscribe", {"url": url})
        assert refused.status_code == 400, (url, refused.text)
        assert "is not public" in refused.json()["message"]
        assert "WEBHOOK_ALLOW_PRIVATE=1" in refused.json()["message"]
    mutation = f'mutation {{ subscribeWebhook(input: {{url: "{receiver.url}/hook"}}) {{ id }} }}'
    graphql = gw.http.post("/graphql", json={"query": mutation})
    [error] = graphql.json()["errors"]
    assert "is not public (loopback)" in error["message"]
    assert gw.post("/webhooks.list").json()["data"] == []

    # Names are taken at subscribe, and checked on what they resolve to at each delivery.
    names = {"localhost": "127.0.0.1", own_hostname(): None}
    hooks = {name: gw.post("/webhooks.subscribe", {
        "url": f"http://{name}:{port}/hook", "events": ["message.created"]}).json()
        for name in names}
    page = connect_page(gw, graph)["source_channel_id"]
    gw.webhook(payloads.envelope(page, payloads.text(page, "8001", "not for you")))
    for name, hook in hooks.items():
        wait_for(lambda: info(gw, hook)["last_error"])
        error = info(gw, hook)["last_error"]
        assert f"(from {name}) is not public" in error, error
        assert "WEBHOOK_ALLOW_PRIVATE=1" in error
        if names[name]:
            assert names[name] in error
        # Retried with backoff, then given up after WEBHOOK_RETRY_SECONDS, like any failure.
        wait_for(lambda: info(gw, hook)["queued"] == 0)
    assert "gave up on a message.created" in gw.log()
    assert receiver.received == []


def test_a_literal_address_allowed_before_is_refused_at_delivery(start_gateway, graph,
                                                                 receiver):
    first = start_gateway()  # WEBHOOK_ALLOW_PRIVATE=1, as every test gateway
    page = connect_page(first, graph)["source_channel_id"]
    hook = first.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook",
                                              "events": ["message.created"]}).json()
    first.stop()
    second = start_gateway(first.env["MONGODB_DATABASE"], **STRICT)
    second.webhook(payloads.envelope(page, payloads.text(page, "8002", "still not for you")))
    wait_for(lambda: info(second, hook)["last_error"])
    assert "the receiver's address 127.0.0.1 is not public (loopback)" \
        in info(second, hook)["last_error"]
    assert receiver.received == []


def test_proxies_from_the_environment_are_not_used(start_gateway, graph, receiver):
    # A proxy that is not there: a delivery through it would fail. The Graph API is not proxied.
    gw = start_gateway(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                       ALL_PROXY="http://127.0.0.1:9", NO_PROXY=graph.url.rsplit("/", 1)[0],
                       WEBHOOK_TIMEOUT_SECONDS="2")
    page = connect_page(gw, graph)["source_channel_id"]
    hook = gw.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook",
                                           "events": ["message.created"]}).json()
    gw.webhook(payloads.envelope(page, payloads.text(page, "8003", "direct")))
    wait_for(lambda: receiver.events("/hook"))
    assert info(gw, hook)["last_error"] is None

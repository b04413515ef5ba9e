"""Outgoing webhooks reach public addresses only, unless WEBHOOK_ALLOW_PRIVATE=1.

Anyone who may subscribe a webhook chooses where the gateway posts: without a guard, a URL could
make it call what only it can reach (loopback services, the store, a cloud metadata endpoint at
169.254.169.254, the private network). The guard sits where the connection is made, so it holds
whatever the URL says and whatever a name resolves to at delivery time:

- the receiver's name is resolved once, every address it resolves to is checked, and the
  connection goes to a checked address; no second lookup takes place that a hostile DNS server
  could answer differently (DNS rebinding). TLS still verifies the certificate for, and sends SNI
  of, the name in the URL;
- refused are loopback, private, shared (100.64.0.0/10), link-local, multicast, unspecified and
  reserved addresses, and IPv6 addresses that embed such an IPv4 address (IPv4-mapped, 6to4,
  NAT64);
- proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) are not used: through a proxy
  the gateway could not know where it connects.

httpx 0.28 takes no network backend, so `PublicOnlyTransport` gives its connection pool one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import typing

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the last 32 bits are an IPv4 address
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use


class NotPublic(httpcore.ConnectError):
    """The receiver's address is not a public one; the message says which and why."""


def why_not_public(address: IPAddress) -> str | None:
    """What kind of non-public address `address` is (e.g. "loopback"), or None when public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = why_not_public(embedded)
            return f"{reason}, embedded in IPv6" if reason else None
        if address in LOCAL_NAT64:
            return "private"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED:
        return "shared address space"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "private"
    return None


def parse_address(text: str) -> IPAddress | None:
    """An IP address literal (IPv6 with or without brackets or a zone), or None for a name."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def refusal(host: str, address: IPAddress, reason: str) -> str:
    named = str(address) if parse_address(host) == address else f"{address} (from {host})"
    return (f"the receiver's address {named} is not public ({reason}); "
            "set WEBHOOK_ALLOW_PRIVATE=1 to allow private destinations")


class PublicAddressesOnly(httpcore.AsyncNetworkBackend):
    """A network backend that resolves, checks, and connects to the address it checked."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend | None = None,
                 refuse: typing.Callable[[IPAddress], str | None] = why_not_public) -> None:
        """`backend` makes the connections (anyio's); `refuse` says why an address is refused."""
        self._backend = backend or httpcore.AnyIOBackend()
        self._refuse = refuse

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = await self._resolve(host, port, timeout)
        for address in addresses:
            reason = self._refuse(address)
            if reason:
                raise NotPublic(refusal(host, address, reason))
        error: Exception | None = None
        for address in addresses:  # in the resolver's order, as a plain connect would try them
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._backend.connect_tcp(
                    str(address), port, timeout=left, local_address=local_address,
                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        literal = parse_address(host)
        if literal is not None:
            return [literal]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = parse_address(str(sockaddr[0]))
            if address is not None and address not in addresses:
                addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no IP address")
        return addresses

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotPublic("outgoing webhooks are posted over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                              keepalive_expiry=5.0)


class PublicOnlyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, its connection pool connecting through `PublicAddressesOnly`.

    The pool is swapped for one given the backend (httpx 0.28 has no argument for it);
    tests/test_webhook_egress.py posts through this transport, so a change there shows.
    """

    def __init__(self, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicAddressesOnly(),
        )


def webhook_transport(allow_private: bool) -> httpx.AsyncBaseTransport:
    """The transport outgoing webhooks are posted through (the client given it uses no proxy)."""
    return httpx.AsyncHTTPTransport() if allow_private else PublicOnlyTransport()

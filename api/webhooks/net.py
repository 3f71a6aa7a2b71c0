"""Where a webhook may be posted: partner URLs checked at subscription and at every connection.

A URL is ``http`` or ``https`` with a host, no user information. Its host is resolved here, by
the service, and every address it resolves to must be globally routable (not loopback, private,
link-local such as the cloud metadata address ``169.254.169.254``, carrier-grade NAT, reserved,
multicast) unless the settings allow private addresses (``SINERGI_WEBHOOK_ALLOW_PRIVATE``;
development mode allows them). The check is made again at every connection, and the connection
goes to the very address that was checked (:class:`GuardedTransport`): a name that resolved to
a public address at subscription and to ``127.0.0.1`` a second later (DNS rebinding) reaches
nothing. Redirects are never followed (a 3xx is an unsuccessful attempt).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT = 5.0  # seconds


class UnsafeURL(ValueError):
    """The URL may not be posted to; the message says why (shown to the subscriber)."""


class RefusedAddress(httpx.ConnectError):
    """At connection: the host resolved to an address the settings do not allow."""


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an acceptable URL, else :class:`UnsafeURL`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("a URL with user information is not accepted")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the URL has no host")
    if parts.fragment:
        raise UnsafeURL("a URL with a fragment is not accepted")
    return scheme, host, port or (443 if scheme == "https" else 80)


def allowed(ip: IPAddress, allow_private: bool) -> bool:
    """Whether a connection to ``ip`` is allowed."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return False
    return allow_private or ip.is_global


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` (itself when it is an address), in the resolver's order."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT)
    except (OSError, TimeoutError, UnicodeError):
        return []
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


async def checked_addresses(host: str, port: int, allow_private: bool) -> list[IPAddress]:
    """Every address of ``host``, all of them allowed; else :class:`UnsafeURL`."""
    addresses = await resolve(host, port)
    if not addresses:
        raise UnsafeURL(f"the host {host} does not resolve")
    refused = [ip for ip in addresses if not allowed(ip, allow_private)]
    if refused:
        raise UnsafeURL(f"the host {host} resolves to {refused[0]}, which is not a public address")
    return addresses


async def check_url(url: str, allow_private: bool) -> None:
    """At subscription: the URL is acceptable and its host resolves to allowed addresses only."""
    _scheme, host, port = split_url(url)
    await checked_addresses(host, port, allow_private)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that resolves the host itself, checks every address, and connects to
    a checked one (the ``Host`` header and, for https, the TLS server name stay the URL's)."""

    def __init__(self, *, allow_private: bool, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.allow_private = allow_private
        self.inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"refused scheme {url.scheme}", request=request)
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await checked_addresses(host, port, self.allow_private)
        except UnsafeURL as exc:
            raise RefusedAddress(str(exc), request=request) from None
        # The request goes to each checked address in turn (its URL's host replaced, the Host
        # header and, for https, the TLS server name staying the name's); the caller gets it
        # back as it sent it.
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        last: httpx.ConnectError | None = None
        try:
            for ip in addresses:
                request.url = url.copy_with(host=str(ip))
                try:
                    return await self.inner.handle_async_request(request)
                except httpx.ConnectError as exc:
                    last = exc
        finally:
            request.url = url
        assert last is not None
        raise last

    async def aclose(self) -> None:
        await self.inner.aclose()

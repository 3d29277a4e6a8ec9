"""The origin a request arrived on: the base of the links we hand out and the same-origin test
of the signaling WebSocket.

The scheme comes from the connection (http/https, ws/wss) and the host and port from the
Host header. A reverse proxy in front rewrites both, so its X-Forwarded-Proto and
X-Forwarded-Host are believed, but only when the direct peer is one of `trusted_proxies`:
from anyone else they are ignored, since anyone can send them.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from starlette.requests import HTTPConnection

from server.settings import Settings

# host[:port] as a Host header may carry it: a name, an IPv4 address or a bracketed IPv6
# literal. Anything else (spaces, slashes, '@') never becomes part of a link.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_SCHEMES = {"http": "http", "ws": "http", "https": "https", "wss": "https"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def proxy_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def from_trusted_proxy(conn: HTTPConnection, settings: Settings) -> bool:
    if not settings.trusted_proxies or conn.client is None:
        return False
    try:
        peer = ipaddress.ip_address(conn.client.host)
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped  # an IPv4 proxy seen on a dual-stack socket
    return any(peer in net for net in proxy_networks(tuple(settings.trusted_proxies)))


def client_address(conn: HTTPConnection, settings: Settings) -> str:
    """The address a request came from: the direct peer, or behind trusted proxies the
    right-most X-Forwarded-For entry that is not one of them (the left ones, anyone can
    write)."""
    peer = conn.client.host if conn.client is not None else ""
    if not from_trusted_proxy(conn, settings):
        return peer
    networks = proxy_networks(tuple(settings.trusted_proxies))
    hops = [h.strip() for h in ",".join(conn.headers.getlist("x-forwarded-for")).split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return hop  # not an address: the furthest we can believe
        if not any(address in net for net in networks):
            return hop
    return peer


def _first(value: str | None) -> str | None:
    """The first (client-most) entry of a possibly comma-separated forwarded header."""
    if value is None:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def request_origin(conn: HTTPConnection, settings: Settings) -> str | None:
    """scheme://host[:port] the client used to reach us; None without a usable Host."""
    scheme = _SCHEMES.get(conn.url.scheme)
    host = conn.headers.get("host")
    if from_trusted_proxy(conn, settings):
        scheme = _SCHEMES.get((_first(conn.headers.get("x-forwarded-proto")) or "").lower(), scheme)
        host = _first(conn.headers.get("x-forwarded-host")) or host
    if scheme is None or host is None or not _HOST.match(host):
        return None
    host = host.lower()
    # Browsers leave the default port out of an Origin; so must we to compare equal.
    default = ":443" if scheme == "https" else ":80"
    if host.endswith(default):
        host = host.removesuffix(default)
    return f"{scheme}://{host}"


def public_base(conn: HTTPConnection, settings: Settings) -> str:
    """Where links sent from this request must point: public_url when set, else the origin
    the request arrived on, else (no Host header) the configured address."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return request_origin(conn, settings) or settings.effective_public_url

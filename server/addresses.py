"""Where this service can be reached: the machine's LAN addresses and the URLs built on them.

Links, QR codes and the start-up print must name an address a classroom PC can reach, never
a hard-coded 127.0.0.1 (docs/operations.md "One school's LAN").
"""

from __future__ import annotations

import ipaddress

import ifaddr

# Hosts meaning "every interface": a link must name one of the machine's addresses instead.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def lan_addresses(ipv4: bool = True, ipv6: bool = True) -> list[str]:
    """The machine's non-loopback interface addresses, IPv4 first.

    IPv6 link-local addresses are left out: a URL or certificate cannot name their zone.
    """
    v4: list[str] = []
    v6: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                address = ipaddress.ip_address(ip.ip)
                if ipv4 and not address.is_loopback and not address.is_link_local:
                    v4.append(str(address))
            else:
                address = ipaddress.ip_address(ip.ip[0])
                if ipv6 and not address.is_loopback and not address.is_link_local:
                    v6.append(str(address))
    return list(dict.fromkeys(v4 + v6))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def url_host(host: str) -> str:
    """`host` as it stands in a URL: IPv6 literals in brackets."""
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


def base_url(scheme: str, host: str, port: int) -> str:
    """scheme://host[:port], the port left out when it is the scheme's default."""
    default = {"http": 80, "https": 443}.get(scheme)
    suffix = "" if port == default else f":{port}"
    return f"{scheme}://{url_host(host)}{suffix}"


def listen_urls(scheme: str, host: str, port: int, public_url: str = "") -> list[str]:
    """The base URLs to print at start-up: public_url alone when set; else, listening on
    every interface, one per LAN address (IPv6 too when listening on ::); else the host."""
    if public_url:
        return [public_url.rstrip("/")]
    if host in WILDCARD_HOSTS:
        addresses = lan_addresses(ipv6=host == "::") or ["127.0.0.1"]
        return [base_url(scheme, a, port) for a in addresses]
    return [base_url(scheme, host, port)]

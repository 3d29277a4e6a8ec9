"""The listening socket of `tongke serve`.

`--host ::` must reach IPv6 and IPv4 classrooms alike. uvicorn binds through asyncio's
create_server, which marks an IPv6 socket IPV6_V6ONLY, so IPv4 clients could not connect;
here "::" gets one dual-stack socket instead (IPv4 arrives as ::ffff:a.b.c.d) wherever the
OS offers it. Other hosts are left to uvicorn.
"""

from __future__ import annotations

import socket

# Pending connections queued by the kernel; uvicorn's own default.
BACKLOG = 2048


def dual_stack_socket(host: str, port: int) -> socket.socket | None:
    """A bound dual-stack socket for host "::", or None to let uvicorn bind `host`."""
    if host != "::" or not socket.has_dualstack_ipv6():
        return None
    return socket.create_server(
        ("::", port), family=socket.AF_INET6, backlog=BACKLOG, dualstack_ipv6=True
    )

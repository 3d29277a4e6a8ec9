"""`--host ::` listens on one dual-stack socket (server/listen.py): IPv6 and IPv4 both connect."""

from __future__ import annotations

import socket

import pytest

from server.listen import dual_stack_socket


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="no dual-stack sockets here")
def test_host_any_ipv6_takes_ipv6_and_ipv4_clients() -> None:
    server = dual_stack_socket("::", 0)
    assert server is not None
    with server:
        port = server.getsockname()[1]
        for family, address in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
            with socket.socket(family) as client:
                client.connect((address, port))
                accepted, peer = server.accept()
                accepted.close()
                assert peer[0] in ("::1", "::ffff:127.0.0.1"), peer


def test_other_hosts_are_left_to_uvicorn() -> None:
    assert dual_stack_socket("0.0.0.0", 0) is None
    assert dual_stack_socket("127.0.0.1", 0) is None

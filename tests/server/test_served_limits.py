"""Limits at the socket, through the real `tongke serve` (issue 17, findings 4, 6 and 7).

uvicorn stands between the client and the app: it closed a 65,537-byte frame with 1009
before the app could answer, logged a traceback for each invalid UTF-8 text frame, and never
timed out a half-sent request. These run the service as deployed (server/http_guard.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from served_support import RawWebSocket, Served, served


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {
        "TONGKE_HTTP_HEADER_TIMEOUT_S": "1.5",
        "TONGKE_HTTP_MAX_CONNECTIONS": "40",
    }
    with served(tmp_path_factory.mktemp("served"), env) as running:
        yield running


def _metric(service: Served, name: str) -> float:
    for line in httpx.get(f"{service.base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not on /metrics")


def test_a_frame_past_the_message_limit_is_answered_and_the_connection_kept(
    service: Served,
) -> None:
    ws = RawWebSocket(service.port)
    try:
        ws.send_json({"type": "ping", "id": "big", "pad": "x" * 65_537})
        error = ws.receive_message()
        assert (error["type"], error["code"], error["id"]) == ("error", "message_too_large", "big")
        ws.send_json({"type": "ping", "id": "after"})
        assert ws.receive_message() == {"type": "pong", "id": "after"}
    finally:
        ws.close()


def test_a_frame_past_the_memory_bound_is_closed_with_1009(service: Served) -> None:
    ws = RawWebSocket(service.port)
    try:
        ws.send_frame(0x1, b'{"type":"ping","pad":"' + b"x" * (1024 * 1024) + b'"}')
        assert ws.close_code() == 1009
    finally:
        ws.close()


def test_invalid_utf8_closes_quietly_with_1007_counted_once(service: Served) -> None:
    before = _metric(service, "tongke_ws_invalid_utf8_total")
    for _ in range(3):
        ws = RawWebSocket(service.port)
        try:
            ws.send_frame(0x1, b'{"type":"ping","id":"\xff\xfe"}')
            assert ws.close_code() == 1007
        finally:
            ws.close()
    assert _metric(service, "tongke_ws_invalid_utf8_total") == before + 3
    time.sleep(0.3)
    log = service.log_text()
    assert "Traceback" not in log and "ERROR" not in log, log
    assert log.count("a WebSocket text frame is not UTF-8") == 3  # one per connection


def test_a_half_sent_request_is_closed_after_the_header_timeout(service: Served) -> None:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert time.monotonic() - started < 8
    finally:
        sock.close()


def test_half_sent_requests_past_the_cap_do_not_starve_a_real_request(service: Served) -> None:
    """The cap is 40 here; 80 half-sent requests, then real requests are still served."""
    before = _metric(service, "tongke_http_connections_evicted_total")
    held = []
    try:
        for _ in range(80):
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Le")
            held.append(sock)
        for _ in range(5):
            assert httpx.get(f"{service.base}/healthz", timeout=5).status_code == 200
        assert _metric(service, "tongke_http_connections_evicted_total") >= before + 40
    finally:
        for sock in held:
            sock.close()

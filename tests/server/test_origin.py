"""The origin a request arrived on (server/origin.py): links follow it, X-Forwarded-* only from
trusted proxies, and the WebSocket accepts its own origin and refuses foreign ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.origin import public_base, request_origin
from server.settings import Settings
from server.ws import origin_allowed


def request(
    host: str | None, scheme: str = "http", client: str = "192.168.1.50", **headers: str
) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    if host is not None:
        raw.append((b"host", host.encode()))
    scope = {
        "type": "http",
        "scheme": scheme,
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": raw,
        "client": (client, 40000),
        "server": ("0.0.0.0", 8443),
    }
    return Request(scope)


def test_the_origin_is_the_scheme_and_host_header_the_request_used() -> None:
    settings = Settings()
    assert request_origin(request("192.168.1.10:8443", "https"), settings) == (
        "https://192.168.1.10:8443"
    )
    assert request_origin(request("[fd00::2]:8443", "https"), settings) == "https://[fd00::2]:8443"
    # Default ports are left out, as browsers leave them out of an Origin.
    assert request_origin(request("School.Test:443", "https"), settings) == "https://school.test"
    assert request_origin(request("school.test:80"), settings) == "http://school.test"


def test_a_host_header_that_is_not_a_host_never_becomes_a_link() -> None:
    settings = Settings(port=9000)
    for bad in ("evil.cn/path", "a b", "user@evil.cn", ""):
        assert request_origin(request(bad), settings) is None, bad
        assert public_base(request(bad), settings) == "http://127.0.0.1:9000"
    assert request_origin(request(None), settings) is None


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    forwarded = {"x_forwarded_proto": "https", "x_forwarded_host": "tk.example.cn"}
    untrusted = Settings()
    assert request_origin(request("10.0.0.2:8000", **forwarded), untrusted) == (
        "http://10.0.0.2:8000"
    )
    trusted = Settings(trusted_proxies=["10.0.0.0/8", "::1"])
    from_proxy = request("10.0.0.2:8000", client="10.0.0.9", **forwarded)
    assert request_origin(from_proxy, trusted) == "https://tk.example.cn"
    stranger = request("10.0.0.2:8000", client="192.168.1.50", **forwarded)
    assert request_origin(stranger, trusted) == "http://10.0.0.2:8000"
    # A proxy reached over a dual-stack socket shows as ::ffff:10.0.0.9.
    mapped = request("10.0.0.2:8000", client="::ffff:10.0.0.9", **forwarded)
    assert request_origin(mapped, trusted) == "https://tk.example.cn"
    # A chain of proxies: the first (client-most) entry is the one the browser used.
    chain = request(
        "x", client="::1", x_forwarded_proto="https, http", x_forwarded_host="a.cn, b.cn"
    )
    assert request_origin(chain, trusted) == "https://a.cn"


def test_public_url_wins_over_the_request() -> None:
    settings = Settings(public_url="https://tk.example.cn/")
    assert public_base(request("192.168.1.10:8000"), settings) == "https://tk.example.cn"


def test_origin_check_accepts_same_origin_and_refuses_others() -> None:
    allowed = frozenset({"http://127.0.0.1:8000"})
    own = "https://school.test:8443"
    assert origin_allowed("https://school.test:8443", allowed, own)
    assert origin_allowed("https://School.test:8443/", allowed, own)
    assert origin_allowed(None, allowed, own)  # not a browser: the token decides
    for foreign in ("https://evil.test:8443", "http://school.test:8443", "https://school.test"):
        assert not origin_allowed(foreign, allowed, own), foreign


@pytest.fixture
def lan_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app as a LAN classroom reaches it: host 0.0.0.0, no public_url."""
    settings = Settings(
        data_dir=tmp_path, host="0.0.0.0", seed_demo=False, secret_key="k" * 40, port=8000
    )
    app = create_app(settings)
    with TestClient(app, base_url="http://192.168.1.10:8000", client=("192.168.1.50", 1)) as c:
        yield c


def test_the_websocket_takes_its_own_lan_origin_without_any_setting(
    lan_client: TestClient,
) -> None:
    url = "ws://192.168.1.10:8000/ws"  # the handshake's Host: the LAN address
    with lan_client.websocket_connect(url, headers={"origin": "http://192.168.1.10:8000"}) as ws:
        ws.send_text("{}")  # accepted: the signaling session answers
        assert ws.receive_json()["type"] == "error"
    with pytest.raises(WebSocketDisconnect) as refused:
        with lan_client.websocket_connect(url, headers={"origin": "http://evil.test:8000"}):
            pass
    assert refused.value.code == 4403

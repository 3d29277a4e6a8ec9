"""The nginx server block of docs/operations.md, run for real in front of the service.

The block is read from the docs (so the docs cannot drift from what is tested), given this
test's ports and a certificate from the service's own local CA, and run by Debian's nginx.
Through it: links are built from the proxy's https address (X-Forwarded-* from a trusted
proxy, no public_url), the signaling WebSocket upgrades and joins, a foreign Origin is
refused. (Headers from an untrusted peer are ignored: tests/server/test_origin.py; here
nginx and the test share 127.0.0.1.)
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from browser_harness import PASSWORD, District, LiveServer, free_port

from server.local_ca import ensure_local_tls
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def documented_nginx() -> tuple[str, str]:
    """(server block, http-block lines) as docs/operations.md gives them."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    found = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert found, "docs/operations.md has no nginx block"
    server, _, http_lines = found.group(1).partition("# In the http block:")
    return server, http_lines


def nginx_conf(prefix: Path, port: int, upstream: int, cert: Path, key: Path) -> str:
    server, http_lines = documented_nginx()
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("server_name node-a.tk.example.cn;", "server_name localhost;"),
        ("/etc/nginx/tls/tk.example.cn.fullchain.pem", str(cert)),
        ("/etc/nginx/tls/tk.example.cn.key", str(key)),
        ("http://127.0.0.1:8001", f"http://127.0.0.1:{upstream}"),
    ):
        assert old in server, f"the documented block no longer has {old!r}"
        server = server.replace(old, new)
    return f"""
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    {http_lines}
    {server}
}}
"""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is needed (scripts/ensure-system-deps.sh installs it)")
    service = LiveServer(tmp_path_factory.mktemp("node"), trusted_proxies=["127.0.0.1"])
    service.start()
    district = service.seed()
    prefix = tmp_path_factory.mktemp("nginx")
    tls = ensure_local_tls(Settings(data_dir=prefix, tls_hostnames=["localhost"]), addresses=[])
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, service.port, tls.cert_file, tls.key_file))
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(prefix)], stderr=subprocess.PIPE)
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    base = f"https://localhost:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{base}/healthz", verify=context, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not serve: {proc.stderr.read()!r}") from None
                time.sleep(0.1)
        yield {"base": base, "ssl": context, "district": district, "service": service}
    finally:
        proc.terminate()
        proc.wait(10)
        service.stop()


def signed_in(proxied: dict[str, Any]) -> httpx.Client:
    client = httpx.Client(base_url=proxied["base"], verify=proxied["ssl"], timeout=10)
    r = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def test_links_through_the_proxy_point_at_the_proxys_https_address(
    proxied: dict[str, Any],
) -> None:
    district: District = proxied["district"]
    admin = signed_in(proxied)
    try:
        links = admin.get(f"/api/lessons/{district.lesson['id']}/links").json()
    finally:
        admin.close()
    assert links and all(link["url"].startswith(proxied["base"] + "/") for link in links)


async def ws_join(proxied: dict[str, Any], origin: str) -> dict[str, Any]:
    district: District = proxied["district"]
    async with httpx.AsyncClient(base_url=proxied["base"], verify=proxied["ssl"]) as http:
        joined = (await http.post(f"/api/join/{district.links['receiver1']}")).json()
    url = proxied["base"].replace("https://", "wss://") + joined["ws_url"]
    async with websockets.connect(url, ssl=proxied["ssl"], origin=origin) as ws:  # type: ignore[arg-type]
        await ws.send(
            json.dumps({"type": "join", "id": "j", "version": 1, "token": joined["token"]})
        )
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message.get("id") == "j":
                return message


def test_the_websocket_upgrades_through_the_proxy_and_joins(proxied: dict[str, Any]) -> None:
    reply = asyncio.run(ws_join(proxied, origin=proxied["base"]))
    assert reply["type"] == "joined" and reply["role"] == "receiver"


def test_a_foreign_origin_is_refused_through_the_proxy(proxied: dict[str, Any]) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(ws_join(proxied, origin="https://evil.example"))
    assert refused.value.response.status_code == 403  # docs/protocol.md: before accept

"""What the many-nodes tests share (the fixtures are in conftest.py).

A module of its own, with a unique name: `from conftest import ...` would find another
folder's conftest when several test folders run in one session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from shared_support import new_database_name, postgres_admin, postgres_database_url

from server.db import open_database
from server.demo import DemoDistrict, seed_demo
from server.settings import Settings
from signaling.redis_bus import RedisBus

REDIS_URL = os.environ.get("TONGKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The secret every node of a test and its seeded district share (join links are signed).
SECRET = "cluster-secret-0123456789abcdef0123456789abcdef"


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); raises OSError if unreachable."""
    name = new_database_name("tongke_cluster")
    await postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_database_url(name)
    finally:
        await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def delete_prefix(redis: Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await redis.delete(*keys)


class NodeHandle:
    """A ClusterNode with a load and a set of local lessons the test sets by hand."""

    def __init__(self, node: Any, load: Any, lessons: set[str]) -> None:
        self.node = node
        self.load = load
        self.lessons = lessons

    def __getattr__(self, name: str) -> Any:
        return getattr(self.node, name)


MakeBus = Callable[..., Awaitable[RedisBus]]
MakeNode = Callable[..., Awaitable[NodeHandle]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """A `tongke serve` process of the cluster."""

    name: str
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


async def start_node(
    name: str,
    tmp: Path,
    database_url: str,
    prefix: str,
    *,
    redis_url: str = REDIS_URL,
    env: dict[str, str] | None = None,
) -> Node:
    """`tongke serve` on a free port, returned once /readyz answers 200; `env` adds or
    overrides TONGKE_* settings. Its output goes to `tmp/<name>.log` (appended: a node
    started again under its name keeps the earlier log)."""
    port = free_port()
    environ = {
        **os.environ,
        "TONGKE_REDIS_URL": redis_url,
        "TONGKE_REDIS_PREFIX": prefix,
        "TONGKE_NODE_ID": name,
        "TONGKE_NODE_TTL_S": "3",
        "TONGKE_DATABASE_URL": database_url,
        "TONGKE_DATA_DIR": str(tmp / name),
        "TONGKE_SECRET_KEY": SECRET,
        "TONGKE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TONGKE_MEDIA_ADDRESSES": "127.0.0.1",
        **(env or {}),
    }
    log = tmp / f"{name}.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--no-demo",
        env=environ, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    node = Node(name, port, proc, log)
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as http:
        while True:
            assert proc.returncode is None, f"{name} exited:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{node.url}/readyz")).status_code == 200:
                    return node
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)


async def seed_district(tmp: Path, database_url: str = "") -> tuple[str, DemoDistrict]:
    """The demo district in one database every node uses (SQLite in `tmp` unless a URL is
    given), migrated and seeded here once: nodes starting together would race on the
    migrations (docker/compose.yaml runs them once too)."""
    database_url = database_url or f"sqlite+aiosqlite:///{(tmp / 'shared.db').resolve()}"
    settings = Settings(data_dir=tmp, database_url=database_url, secret_key=SECRET)
    async with open_database(settings) as db:
        return database_url, await seed_demo(db, settings)


def codes(demo: DemoDistrict) -> dict[str, list[str]]:
    """The demo lesson's join codes by role."""
    found: dict[str, list[str]] = {}
    for link in demo.links:
        role = link.label.split(" ")[1]  # "主讲 lead · ..." -> lead
        found.setdefault(role, []).append(link.url.rsplit("/", 1)[-1].rsplit("=", 1)[-1])
    return found


async def admin_headers(node: Node, demo: DemoDistrict) -> dict[str, str]:
    """The district admin, signed in on `node`."""
    admin = next(a for a in demo.accounts if a.role == "admin")
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.post(
            "/api/auth/login", json={"username": admin.username, "password": admin.password}
        )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def gauge(node: Node, name: str) -> float:
    """An unlabelled metric of `node`'s /metrics."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.url}/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} missing from {node.name}'s /metrics"
    return float(found.group(1))


async def until(
    what: str, check: Callable[[], object], within_s: float = 60.0, poll_s: float = 0.1
) -> float:
    """Polls `check` (a coroutine it returns is awaited) until it holds; the seconds it took."""
    start = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        assert time.monotonic() - start < within_s, f"not within {within_s:g}s: {what}"
        await asyncio.sleep(poll_s)

"""What the many-nodes tests share (the fixtures are in conftest.py).

A module of its own, with a unique name: `from conftest import ...` would find another
folder's conftest when several test folders run in one session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from signaling.redis_bus import RedisBus

REDIS_URL = os.environ.get("TONGKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "TONGKE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def _postgres_admin(statement: str) -> None:
    url = make_url(POSTGRES_URL)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); raises OSError if unreachable."""
    name = f"tongke_cluster_{uuid.uuid4().hex[:12]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

"""Fixtures of the many-nodes tests: the real Redis on 127.0.0.1:6379, one key prefix a test.

Every test gets its own prefix and removes only the keys under it, so tests (and helpers
running at the same time) never see each other's nodes, lessons or channels.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cluster_support import REDIS_URL, MakeBus, MakeNode, NodeHandle, delete_prefix
from fault_proxy import FaultProxy
from redis.asyncio import Redis

from signaling.redis_bus import RedisBus, connect_redis


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = connect_redis(REDIS_URL, socket_timeout=5.0)
    try:
        await client.ping()
    except OSError as exc:  # redis' ConnectionError is an OSError too
        await client.aclose()
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    value = f"tongke-test:{uuid.uuid4().hex[:10]}:"
    yield value
    await delete_prefix(redis, value)


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    p = FaultProxy()
    await p.start()
    yield p
    await p.close()


@pytest.fixture
async def make_bus(prefix: str) -> AsyncIterator[MakeBus]:
    """Started RedisBuses on the test's prefix; `url=` puts one behind a FaultProxy."""
    made: list[tuple[RedisBus, Redis]] = []

    async def make(url: str = REDIS_URL, **options: Any) -> RedisBus:
        options.setdefault("publish_timeout_s", 2.0)
        options.setdefault("max_backoff_s", 0.2)
        client = connect_redis(url, socket_timeout=2.0)
        reader = connect_redis(url, socket_timeout=3.0)
        bus = RedisBus(
            client,
            reader,
            node_id=options.pop("node_id", uuid.uuid4().hex[:8]),
            prefix=prefix,
            block_ms=options.pop("block_ms", 500),
            **options,
        )
        await bus.start()
        made.append((bus, client))
        return bus

    yield make
    for bus, client in made:
        await bus.close()
        await client.aclose()


@pytest.fixture
async def make_node(prefix: str) -> AsyncIterator[MakeNode]:
    """Registered cluster nodes (own Redis client each, as separate processes would have)."""
    from server.cluster import ClusterNode, Load

    made: list[tuple[Any, Redis]] = []

    async def make(
        node_id: str,
        *,
        url: str | None = None,
        cpu: float = 0.0,
        peers: int = 0,
        max_peers: int = 100,
        ttl_s: float = 10.0,
        idle_release_s: float = 600.0,
        redis_url: str = REDIS_URL,
        start: bool = True,
    ) -> NodeHandle:
        client = connect_redis(redis_url, socket_timeout=2.0)
        handle = NodeHandle(None, Load(cpu=cpu, peers=peers), set())
        node = ClusterNode(
            client,
            prefix=prefix,
            node_id=node_id,
            url=url or f"http://{node_id}.test:8000",
            max_peers=max_peers,
            ttl_s=ttl_s,
            idle_release_s=idle_release_s,
            load=lambda: handle.load,
            local_lessons=lambda: handle.lessons,
            # The load the test sets, not this test process's CPU.
            cpu=lambda: handle.load.cpu,
        )
        handle.node = node
        if start:
            await node.start()
        made.append((node, client))
        return handle

    yield make
    for node, client in made:
        with contextlib.suppress(Exception):
            await node.close()
        await client.aclose()

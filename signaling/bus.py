"""The bus and directory behind one interface: in-process by default, Redis for many nodes.

The room logic asks the directory which node is a lesson's home (`claim_lesson`) and may
publish lesson events on channels; it never cares which implementation runs (STYLE rule 11).
Delivery never blocks the publisher: a subscriber's queue is bounded and drops on overflow.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger("tongke.bus")

# The message a subscriber receives in place of messages it lost (trimmed while Redis was out
# of reach, a Redis restart, or its own queue full): {"type": GAP_TYPE, "channel", "missed",
# "reset", "reason"}. Whoever keeps state from a channel resynchronizes on it.
GAP_TYPE = "bus_gap"


class Subscription(Protocol):
    async def get(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Bus(Protocol):
    node_id: str

    async def ping(self) -> None: ...

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, channel: str, maxsize: int = 256) -> Subscription: ...

    async def claim_lesson(self, lesson_id: str) -> str:
        """Makes this node the lesson's home unless another holds it; returns the home."""
        ...

    async def release_lesson(self, lesson_id: str) -> None: ...


class LessonDirectory(Protocol):
    """Where each live lesson lives, across nodes (server/cluster/placement.py on Redis)."""

    async def claim(self, lesson_id: str) -> str:
        """The lesson's home node id, placing it here when it has none.

        Raises SignalingError(wrong_node) when the home is another node."""
        ...

    async def release(self, lesson_id: str) -> None: ...


class LocalSubscription:
    def __init__(self, bus: LocalBus, channel: str, maxsize: int) -> None:
        self._bus = bus
        self.channel = channel
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.dropped = 0

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._unsubscribe(self)


class LocalBus:
    """One node: channels are in-process queues, and every lesson's home is this node."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._subs: dict[str, set[LocalSubscription]] = {}
        self._homes: dict[str, str] = {}

    async def ping(self) -> None:
        return None

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        for sub in tuple(self._subs.get(channel, ())):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.dropped += 1
                log.warning("bus subscriber on %s is full; message dropped", channel)

    def subscribe(self, channel: str, maxsize: int = 256) -> LocalSubscription:
        sub = LocalSubscription(self, channel, maxsize)
        self._subs.setdefault(channel, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: LocalSubscription) -> None:
        subs = self._subs.get(sub.channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.channel]

    async def claim_lesson(self, lesson_id: str) -> str:
        return self._homes.setdefault(lesson_id, self.node_id)

    async def release_lesson(self, lesson_id: str) -> None:
        if self._homes.get(lesson_id) == self.node_id:
            del self._homes[lesson_id]


@asynccontextmanager
async def open_bus(
    redis_url: str, *, node_id: str | None = None, prefix: str = "tongke:"
) -> AsyncIterator[Bus]:
    """The in-process bus, or with a Redis URL the Redis bus (refusing to start without Redis)."""
    if not redis_url:
        yield LocalBus(node_id)
        return
    from signaling.redis_bus import TRANSIENT, RedisBus, connect_redis

    redis = connect_redis(redis_url, socket_timeout=5.0)
    # The reader's XREAD blocks up to 1 s on purpose; its socket timeout is longer than that,
    # so only a dead connection times out.
    reader = connect_redis(redis_url, socket_timeout=6.0)
    bus = RedisBus(redis, reader, node_id=node_id or uuid.uuid4().hex[:12], prefix=prefix)
    try:
        await bus.start()
    except TRANSIENT as exc:
        await reader.aclose()
        await redis.aclose()
        raise RuntimeError(f"TONGKE_REDIS_URL is set but Redis does not answer: {exc}") from exc
    try:
        yield bus
    finally:
        await bus.close()
        await redis.aclose()

"""The node registry: every node of a cluster, its address and load, kept alive by heartbeats.

Keys (under the configured prefix):
  node:{id}   hash: id, url, ws_url, cpu, peers, streams, lessons, max_peers, draining,
              started_at, updated_at. PEXPIRE ttl: a node whose heartbeats stop disappears.
  nodes       set of node ids, for listing (entries whose hash expired are pruned on read).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from signaling.redis_bus import TRANSIENT

log = logging.getLogger("tongke.cluster")


@dataclass(frozen=True, slots=True)
class Load:
    """What a node reports in each heartbeat."""

    cpu: float = 0.0  # cores this process used over the last interval (1.0 = one core)
    peers: int = 0
    streams: int = 0  # forwarded streams (consumers, relays included)
    lessons: int = 0  # live lessons with a room on this node


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    url: str
    ws_url: str
    cpu: float
    peers: int
    streams: int
    lessons: int
    max_peers: int
    draining: bool
    started_at: float
    updated_at: float

    @property
    def full(self) -> bool:
        return self.peers >= self.max_peers

    def score(self, homed: int = 0) -> float:
        """Lower is emptier: CPU plus the share of peer capacity used, plus a small weight per
        lesson homed here (placed lessons whose peers have not arrived yet count too, so a
        burst of placements spreads instead of piling on the node that looked emptiest)."""
        return self.cpu + self.peers / max(1, self.max_peers) + LESSON_WEIGHT * homed

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> NodeInfo:
        h = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            id=h["id"],
            url=h.get("url", ""),
            ws_url=h.get("ws_url", ""),
            cpu=float(h.get("cpu", 0)),
            peers=int(h.get("peers", 0)),
            streams=int(h.get("streams", 0)),
            lessons=int(h.get("lessons", 0)),
            max_peers=int(h.get("max_peers", 1)),
            draining=h.get("draining", "0") == "1",
            started_at=float(h.get("started_at", 0)),
            updated_at=float(h.get("updated_at", 0)),
        )

    def public(self) -> dict[str, Any]:
        return asdict(self)


# One homed lesson weighs as much as 1% of a node's peer capacity in placement.
LESSON_WEIGHT = 0.01


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ws_url_of(public_url: str) -> str:
    """The signaling WebSocket URL of a node reached at `public_url`."""
    base = public_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + "/ws"
    return "ws://" + base.removeprefix("http://") + "/ws"


class CpuMeter:
    """This process's CPU use between two readings, from process_time (all threads)."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def read(self) -> float:
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return round(used, 3)


class NodeRegistry:
    """This node's entry (register, heartbeat, drain, leave) and the view of all nodes."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        node_id: str,
        url: str,
        *,
        max_peers: int,
        ttl_s: float = 10.0,
        load: Callable[[], Load] = Load,
        cpu: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.ws_url = ws_url_of(self.url)
        self.max_peers = max_peers
        self.ttl_ms = int(ttl_s * 1000)
        self.load = load
        self.draining = False
        self.started_at = time.time()
        self.last_load = Load()
        self.heartbeats = 0
        self.heartbeat_failures = 0
        self._write_lock = asyncio.Lock()
        # This process's CPU use by default; the load's own figure when given (tests).
        self._cpu = cpu or CpuMeter().read

    def node_key(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    @property
    def nodes_key(self) -> str:
        return f"{self.prefix}nodes"

    def _fields(self) -> dict[str, str | int | float]:
        load = self.load()
        self.last_load = Load(self._cpu(), load.peers, load.streams, load.lessons)
        return {
            "id": self.node_id,
            "url": self.url,
            "ws_url": self.ws_url,
            "cpu": self.last_load.cpu,
            "peers": load.peers,
            "streams": load.streams,
            "lessons": load.lessons,
            "max_peers": self.max_peers,
            "draining": int(self.draining),
            "started_at": self.started_at,
            "updated_at": time.time(),
        }

    async def heartbeat(self) -> None:
        """Writes this node's entry with a fresh TTL (registering is the first heartbeat)."""
        key = self.node_key(self.node_id)
        # One write at a time: a heartbeat in flight must not land after a drain change
        # with the draining flag it read before.
        async with self._write_lock, self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=self._fields())
            pipe.pexpire(key, self.ttl_ms)
            pipe.sadd(self.nodes_key, self.node_id)
            await pipe.execute()
        self.heartbeats += 1

    register = heartbeat

    async def set_draining(self, draining: bool) -> None:
        """A draining node gets no new lessons; its lessons go on until they end."""
        self.draining = draining
        await self.heartbeat()

    async def leave(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.node_key(self.node_id))
            pipe.srem(self.nodes_key, self.node_id)
            await pipe.execute()

    async def node(self, node_id: str) -> NodeInfo | None:
        raw = await self.redis.hgetall(self.node_key(node_id))  # type: ignore[misc]
        return NodeInfo.from_hash(raw) if raw else None

    async def nodes(self) -> list[NodeInfo]:
        """Every node whose heartbeat is alive, by id; forgets those that expired."""
        ids = sorted(_text(i) for i in await self.redis.smembers(self.nodes_key))  # type: ignore[misc]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self.node_key(node_id))
            rows = await pipe.execute()
        alive, dead = [], []
        for node_id, raw in zip(ids, rows, strict=True):
            (alive if raw else dead).append(NodeInfo.from_hash(raw) if raw else node_id)
        if dead:
            await self.redis.srem(self.nodes_key, *dead)  # type: ignore[misc]
        return alive  # type: ignore[return-value]

    async def run(
        self, on_beat: Callable[[], Awaitable[None]] | None = None, interval_s: float | None = None
    ) -> None:
        """Heartbeats every ttl/3 until cancelled, in its own task: a slow Redis delays only
        this loop, never a request or a packet. A failed beat is retried at the next tick;
        after the TTL without one, other nodes see this node as gone."""
        interval = interval_s if interval_s is not None else self.ttl_ms / 3000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            # register() was the first beat.
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            try:
                await self.heartbeat()
                if on_beat is not None:
                    await on_beat()
                if self.heartbeat_failures:
                    log.info("node %s heartbeats again", self.node_id)
                self.heartbeat_failures = 0
            except TRANSIENT as exc:
                self.heartbeat_failures += 1
                if self.heartbeat_failures == 1:
                    log.warning("node %s heartbeat failed: %s", self.node_id, exc)
            except Exception:
                # Never let one bad beat end the loop: a node without heartbeats is dead.
                self.heartbeat_failures += 1
                log.exception("node %s heartbeat failed", self.node_id)

"""This node in a cluster: its registry entry, its heartbeat task, placement, draining."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from server.cluster.placement import LessonPlacement
from server.cluster.registry import Load, NodeInfo, NodeRegistry
from signaling.redis_bus import TRANSIENT

log = logging.getLogger("tongke.cluster")

# The signaling path relative to the page's origin (server/api/join.py hands it out too).
LOCAL_WS_PATH = "/ws"


class ClusterNode:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        node_id: str,
        url: str,
        max_peers: int,
        ttl_s: float = 10.0,
        idle_release_s: float = 600.0,
        load: Callable[[], Load] = Load,
        local_lessons: Callable[[], set[str]] = set,
        cpu: Callable[[], float] | None = None,
        on_lost: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.node_id = node_id
        self.registry = NodeRegistry(
            redis, prefix, node_id, url, max_peers=max_peers, ttl_s=ttl_s, load=load, cpu=cpu
        )
        self.placement = LessonPlacement(
            redis,
            self.registry,
            lesson_ttl_s=max(6 * ttl_s, 60.0),
            idle_release_s=idle_release_s,
        )
        self.local_lessons = local_lessons
        # Called for each lesson with a room here that the directory gave to another node
        # while this one missed heartbeats: the room here must end (server/cluster/wiring.py).
        self.on_lost = on_lost
        self.lessons_moved_away = 0
        # Origins of every node's pages: a page served by node B may open its WebSocket here.
        self.origins: frozenset[str] = frozenset({self.registry.url})
        self._task: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()

    @property
    def draining(self) -> bool:
        return self.registry.draining

    async def start(self) -> None:
        await self.registry.register()
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(
            self.registry.run(self._beat), name=f"node-heartbeat-{self.node_id}"
        )
        log.info("node %s joined the cluster at %s", self.node_id, self.registry.url)

    async def _beat(self) -> None:
        refreshed = await self.placement.refresh(self.local_lessons())
        for lesson_id in refreshed.lost:
            self.lessons_moved_away += 1
            if self.on_lost is None:
                continue
            try:
                await self.on_lost(lesson_id)
            except Exception:
                # The next beat reports it again while the room is still here.
                log.exception("ending the moved lesson %s here failed", lesson_id)
        self.origins = frozenset(
            {self.registry.url, *(n.url for n in await self.registry.nodes() if n.url)}
        )

    async def nodes(self) -> list[NodeInfo]:
        return await self.registry.nodes()

    async def ws_url_for(self, lesson_id: str) -> str:
        """Where a peer of this lesson connects: placed by load if it has no home yet."""
        home = await self.placement.place(lesson_id)
        return LOCAL_WS_PATH if home.id == self.node_id else home.ws_url

    async def drain(self) -> None:
        if not self.registry.draining:
            log.info("node %s drains: no new lessons; the ones here go on", self.node_id)
        await self.registry.set_draining(True)

    async def undrain(self) -> None:
        await self.registry.set_draining(False)

    async def wait_drained(self, timeout_s: float, poll_s: float = 1.0) -> bool:
        """Waits until no lesson has a room here (True) or the timeout passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.local_lessons():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(poll_s, max(0.0, deadline - loop.time())))
        return True

    async def close(self) -> None:
        """Leaves cleanly: lessons homed here become re-placeable, the entry goes at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.placement.release_all()
            await self.registry.leave()
            log.info("node %s left the cluster", self.node_id)
        except TRANSIENT as exc:
            # Redis is away: the entry expires by itself after the heartbeat TTL.
            log.warning(
                "node %s could not leave cleanly (%s); its entry will expire", self.node_id, exc
            )

"""Lesson placement and the lesson directory: which node is each live lesson's home.

Keys (under the configured prefix):
  lesson:{id}          hash: node, placed_at, touched_at. PEXPIRE refreshed by the home node
                       on each heartbeat (garbage collection only: liveness is the home node's
                       own heartbeat key, so a dead home's lessons are re-placeable at once).
  node:{id}:lessons    set of the lessons homed on that node (what its heartbeat refreshes).
  lock:lesson:{id}     placement lock: SET NX PX with a random token, released (and the
                       placement written) only by the holder of that token, in Lua.

A placement takes the lock, reads the directory again (someone may have placed the lesson
meanwhile), keeps a live home, or else picks the least loaded live node that is not draining
and not full, and writes the choice (only while still holding the lock). Two nodes racing to
place one lesson therefore agree: the second one waits for the lock and reads the first's
choice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from server.cluster.registry import NodeInfo, NodeRegistry, _text
from signaling.errors import ErrorCode, SignalingError
from signaling.redis_bus import TRANSIENT

log = logging.getLogger("tongke.cluster")

# KEYS[1] lock. ARGV[1] token. Deletes the lock only if we still hold it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] lock, KEYS[2] lesson hash, KEYS[3] new home's set, KEYS[4] old home's set (or '').
# ARGV: token, lesson id, node id, now, ttl_ms, the home read before choosing (or '').
# Writes only while the lock is ours (fencing: a placer that stalled past the lock's expiry
# cannot overwrite a newer placement) and only if the entry is still what we read (a home
# node restoring its entry, which takes no lock, wins). Returns 1, or 0 / -1 when refused.
_PLACE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local current = redis.call('HGET', KEYS[2], 'node') or ''
if current ~= ARGV[6] then return -1 end
redis.call('HSET', KEYS[2], 'node', ARGV[3], 'placed_at', ARGV[4], 'touched_at', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
if KEYS[4] ~= '' and KEYS[4] ~= KEYS[3] then redis.call('SREM', KEYS[4], ARGV[2]) end
return 1
"""

# KEYS[1] lesson hash. ARGV: now. Marks a grant or join, only on an existing entry.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'touched_at', ARGV[1]) end
return 0
"""

# KEYS[1] lesson hash, KEYS[2] the node's set. ARGV: node id, lesson id.
# Deletes the directory entry only if this node is still the home.
_RELEASE = """
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] the node's set. ARGV: node id, ttl_ms, lesson key prefix, now_s, idle_s, local ids...
# For every lesson homed here or with a room here: extends the TTL of those still homed here;
# restores the entry of a local lesson whose entry vanished (a Redis restart); reports local
# lessons another node took over while this one missed heartbeats (first list); releases
# those placed here that nobody joined within idle_s (second list).
_REFRESH = """
local me, ttl, now, idle_s = ARGV[1], ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5])
local local_ids, ids = {}, {}
for i = 6, #ARGV do local_ids[ARGV[i]] = true; ids[ARGV[i]] = true end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do ids[id] = true end
local lost, idle = {}, {}
for id, _ in pairs(ids) do
  local key = ARGV[3] .. id
  local home = redis.call('HGET', key, 'node')
  if not home then
    if local_ids[id] then
      redis.call('HSET', key, 'node', me, 'placed_at', now, 'touched_at', now)
      redis.call('PEXPIRE', key, ttl)
      redis.call('SADD', KEYS[1], id)
    else
      redis.call('SREM', KEYS[1], id)
    end
  elseif home ~= me then
    redis.call('SREM', KEYS[1], id)
    if local_ids[id] then table.insert(lost, id) end
  elseif not local_ids[id]
      and now - tonumber(redis.call('HGET', key, 'touched_at') or '0') > idle_s then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[1], id)
    table.insert(idle, id)
  else
    redis.call('PEXPIRE', key, ttl)
    redis.call('SADD', KEYS[1], id)
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {lost, idle}
"""


class PlacementError(Exception):
    """No node can take the lesson (all draining, full or gone), or the lock stayed busy."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Refreshed:
    lost: list[str]  # lessons another node is now home of (this node's heartbeat lapsed)
    idle: list[str]  # lessons placed here that nobody joined in time, released


class LessonPlacement:
    """Places lessons on nodes and answers where each lives; the Bus's LessonDirectory."""

    def __init__(
        self,
        redis: Redis,
        registry: NodeRegistry,
        *,
        lesson_ttl_s: float = 60.0,
        idle_release_s: float = 600.0,
        lock_ttl_s: float = 5.0,
        lock_wait_s: float = 10.0,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.prefix = registry.prefix
        self.node_id = registry.node_id
        self.lesson_ttl_ms = int(lesson_ttl_s * 1000)
        self.idle_release_ms = int(idle_release_s * 1000)
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        self.lock_wait_s = lock_wait_s
        self.placements = 0
        self._unlock = redis.register_script(_UNLOCK)
        self._place = redis.register_script(_PLACE)
        self._release = redis.register_script(_RELEASE)
        self._refresh = redis.register_script(_REFRESH)
        self._touch_script = redis.register_script(_TOUCH)

    def lesson_key(self, lesson_id: str) -> str:
        return f"{self.prefix}lesson:{lesson_id}"

    def homed_key(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}:lessons"

    def lock_key(self, lesson_id: str) -> str:
        return f"{self.prefix}lock:lesson:{lesson_id}"

    # Reading ---------------------------------------------------------------------------

    async def home_id(self, lesson_id: str) -> str | None:
        """The node named in the directory, alive or not."""
        node = await self.redis.hget(self.lesson_key(lesson_id), "node")  # type: ignore[misc]
        return _text(node) if node is not None else None

    async def home_of(self, lesson_id: str) -> NodeInfo | None:
        """The lesson's home if it has one whose heartbeat is alive."""
        node_id = await self.home_id(lesson_id)
        return await self.registry.node(node_id) if node_id is not None else None

    async def lessons(self) -> dict[str, str]:
        """Every lesson in the directory and its home node id (for operators; scans)."""
        found: dict[str, str] = {}
        start = len(self.prefix) + len("lesson:")
        async for raw in self.redis.scan_iter(match=f"{self.prefix}lesson:*", count=500):
            key = _text(raw)
            node = await self.redis.hget(key, "node")  # type: ignore[misc]
            if node is not None:
                found[key[start:]] = _text(node)
        return found

    # Placing ---------------------------------------------------------------------------

    async def place(self, lesson_id: str, *, prefer: str | None = None) -> NodeInfo:
        """The lesson's live home, placing it (by load, or on `prefer` if it may take it)."""
        home = await self.home_of(lesson_id)
        if home is not None:
            await self._touch(lesson_id)
            return home
        token = await self._lock(lesson_id)
        try:
            while True:
                old = await self.home_id(lesson_id)
                home = await self.registry.node(old) if old is not None else None
                if home is not None:
                    return home  # placed by someone else while we waited for the lock
                home = await self._choose(prefer)
                written = await self._place(
                    keys=[
                        self.lock_key(lesson_id),
                        self.lesson_key(lesson_id),
                        self.homed_key(home.id),
                        self.homed_key(old) if old is not None else "",
                    ],
                    args=[token, lesson_id, home.id, time.time(), self.lesson_ttl_ms, old or ""],
                )
                if written != -1:
                    break  # -1: the entry changed under us (a home restored it): read again
            if not written:
                raise PlacementError("placement_busy", "The placement lock expired; try again.")
            self.placements += 1
            log.info(
                "lesson %s placed on node %s%s",
                lesson_id,
                home.id,
                f" (its home {old} is gone)" if old is not None else "",
            )
            return home
        finally:
            await self._unlock(keys=[self.lock_key(lesson_id)], args=[token])

    async def _choose(self, prefer: str | None) -> NodeInfo:
        nodes = [n for n in await self.registry.nodes() if not n.draining and not n.full]
        if not nodes:
            raise PlacementError(
                "no_node_available", "No node can take a new lesson now (all draining or full)."
            )
        for node in nodes:
            if node.id == prefer:
                return node
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.scard(self.homed_key(node.id))
            homed = await pipe.execute()
        return min(zip(nodes, homed, strict=True), key=lambda nh: (nh[0].score(nh[1]), nh[0].id))[0]

    async def _lock(self, lesson_id: str) -> str:
        token = secrets.token_hex(16)
        key = self.lock_key(lesson_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait_s
        while not await self.redis.set(key, token, nx=True, px=self.lock_ttl_ms):
            if loop.time() > deadline:
                raise PlacementError(
                    "placement_busy", "Another node is placing this lesson; try again."
                )
            await asyncio.sleep(random.uniform(0.01, 0.05))  # jitter: racers do not lockstep
        return token

    async def _touch(self, lesson_id: str) -> None:
        await self._touch_script(keys=[self.lesson_key(lesson_id)], args=[time.time()])

    # LessonDirectory (the signaling side, on a WebSocket join) ----------------------------

    async def claim(self, lesson_id: str) -> str:
        """A peer joined here: this node if it is (or may become) the home; else an error that
        names where to connect. Placing here first is right: the peer is already here."""
        try:
            home = await self.place(lesson_id, prefer=self.node_id)
        except PlacementError as exc:
            raise SignalingError(ErrorCode.CAPACITY, exc.message) from None
        except TRANSIENT:
            raise SignalingError(
                ErrorCode.CAPACITY, "The lesson directory (Redis) is unreachable; try again."
            ) from None
        if home.id != self.node_id:
            raise SignalingError(
                ErrorCode.WRONG_NODE,
                f"This lesson runs on another node; connect to {home.ws_url} "
                "(open the join link again: it names the right node).",
            )
        return home.id

    async def release(self, lesson_id: str) -> None:
        await self._release(
            keys=[self.lesson_key(lesson_id), self.homed_key(self.node_id)],
            args=[self.node_id, lesson_id],
        )

    async def refresh(self, local_lessons: set[str]) -> Refreshed:
        """Called on each heartbeat: keeps this node's lessons in the directory."""
        lost, idle = await self._refresh(
            keys=[self.homed_key(self.node_id)],
            args=[
                self.node_id,
                self.lesson_ttl_ms,
                f"{self.prefix}lesson:",
                time.time(),
                self.idle_release_ms / 1000,
                *sorted(local_lessons),
            ],
        )
        result = Refreshed([_text(x) for x in lost], [_text(x) for x in idle])
        for lesson_id in result.lost:
            log.warning(
                "lesson %s was placed on another node while this one missed heartbeats", lesson_id
            )
        return result

    async def release_all(self) -> None:
        """Leaving: every lesson homed here becomes re-placeable at once."""
        ids = await self.redis.smembers(self.homed_key(self.node_id))  # type: ignore[misc]
        for raw in ids:
            await self.release(_text(raw))
        await self.redis.delete(self.homed_key(self.node_id))

    def describe(self) -> dict[str, Any]:
        return {"node": self.node_id, "placements": self.placements}

"""The bus on Redis Streams, for many nodes (docs/architecture.md, "Many nodes").

Each channel is one stream (XADD with an approximate MAXLEN and a TTL) plus a counter: a Lua
script increments the counter and appends the entry in one step, so the per-channel sequence
number and the stream order always agree. One reader task per node reads every subscribed
stream with XREAD BLOCK from the last entry it saw. After a Redis hiccup it reconnects with
backoff and goes on from that entry, so what was published meanwhile is delivered late, in
order; what was trimmed away (or lost in a Redis restart) shows as a jump in the sequence and
reaches subscribers as a `bus_gap` message before the next one, never as silence.

Publishing retries a dropped connection for `publish_timeout_s`, then raises BusUnavailable:
a publisher always learns that a message did not go out. A retried publish whose first try did
reach Redis is delivered twice (at least once); receivers that care carry their own ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signaling.bus import GAP_TYPE, LessonDirectory

log = logging.getLogger("tongke.bus")

# What a dropped or refused connection raises in redis-py (and below it).
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

# KEYS[1] stream, KEYS[2] counter; ARGV message, maxlen, ttl_ms. Returns the sequence number.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 's', seq, 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return seq
"""


class BusUnavailable(ConnectionError):
    """Redis did not take a message within the publish timeout."""


class RedisSubscription:
    """One subscriber's bounded queue; on overflow it counts, and reports a gap later."""

    def __init__(self, bus: RedisBus, channel: str, maxsize: int) -> None:
        self._bus = bus
        self.channel = channel
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.gaps = 0
        # The sequence number of the message get() returned last (0 for a gap message).
        self.last_seq = 0
        self._pending_missed = 0

    async def get(self) -> dict[str, Any]:
        self.last_seq, message = await self.queue.get()
        return message

    def close(self) -> None:
        self._bus._unsubscribe(self)

    def _deliver(self, seq: int, message: dict[str, Any]) -> None:
        if self._pending_missed:
            # The gap marker goes first, and only when the message after it fits too.
            if self.queue.maxsize and self.queue.maxsize - self.queue.qsize() < 2:
                self._pending_missed += 1
                self.dropped += 1
                return
            self._put_gap(self._pending_missed, reset=False, reason="overflow")
            self._pending_missed = 0
        try:
            self.queue.put_nowait((seq, message))
        except asyncio.QueueFull:
            self.dropped += 1
            self._pending_missed += 1

    def _put_gap(self, missed: int, *, reset: bool, reason: str) -> None:
        self.gaps += 1
        gap = {
            "type": GAP_TYPE,
            "channel": self.channel,
            "missed": missed,
            "reset": reset,
            "reason": reason,
        }
        try:
            self.queue.put_nowait((0, gap))
        except asyncio.QueueFull:
            self._pending_missed += missed


@dataclass
class _Channel:
    key: str
    last_id: str
    last_seq: int | None = None
    subs: set[RedisSubscription] = field(default_factory=set)


class RedisBus:
    """The Bus protocol on Redis. `directory` answers claim_lesson (server/cluster does)."""

    def __init__(
        self,
        redis: Redis,
        reader: Redis,
        *,
        node_id: str,
        prefix: str = "tongke:",
        stream_maxlen: int = 1000,
        stream_ttl_s: float = 3600.0,
        block_ms: int = 1000,
        publish_timeout_s: float = 2.0,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.redis = redis
        # The blocking XREAD has its own connection so commands never queue behind it.
        self._reader = reader
        self.node_id = node_id
        self.prefix = prefix
        self.stream_maxlen = stream_maxlen
        self.stream_ttl_ms = int(stream_ttl_s * 1000)
        self.block_ms = block_ms
        self.publish_timeout_s = publish_timeout_s
        self.max_backoff_s = max_backoff_s
        self.directory: LessonDirectory | None = None
        self.connected = False
        self.reconnects = 0
        self.gaps = 0
        self._script = redis.register_script(_PUBLISH)
        self._channels: dict[str, _Channel] = {}
        self._changed = asyncio.Event()
        self._clock_offset_ms = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Checks Redis answers (a clear error at start if not) and starts the reader."""
        await self._sync_clock()
        self.connected = True
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name="redis-bus")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reader.aclose()

    async def _sync_clock(self, samples: int = 5) -> None:
        """New subscriptions start at "now" on Redis' clock (stream ids are its milliseconds).

        Redis read its clock somewhere between our `before` and `after`, so `redis - after`
        never overestimates the offset: a subscription may start a little early (it may see
        a message from just before), never late (it never misses one from after). The
        tightest of a few samples is kept; the first also opens the connection."""
        best: float | None = None
        for _ in range(samples):
            seconds, micros = await self.redis.time()
            after = time.time()
            low = seconds * 1000 + micros / 1000 - after * 1000
            best = low if best is None else max(best, low)
        self._clock_offset_ms = best or 0.0

    # Bus protocol ------------------------------------------------------------------------

    async def ping(self) -> None:
        await self.redis.ping()

    def stream_key(self, channel: str) -> str:
        # The hash tag keeps a channel's stream and counter in one slot (Redis Cluster).
        return f"{self.prefix}bus:{{{channel}}}"

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Appends a message; returns its sequence number on the channel."""
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        key = self.stream_key(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout_s
        delay = 0.05
        while True:
            try:
                seq = await self._script(
                    keys=[key, key + ":seq"], args=[data, self.stream_maxlen, self.stream_ttl_ms]
                )
                return int(seq)
            except TRANSIENT as exc:
                if loop.time() + delay > deadline:
                    raise BusUnavailable(
                        f"Redis did not take a message on {channel!r} "
                        f"within {self.publish_timeout_s:g}s: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    def subscribe(self, channel: str, maxsize: int = 256) -> RedisSubscription:
        sub = RedisSubscription(self, channel, maxsize)
        state = self._channels.get(channel)
        if state is None:
            # From "now" on Redis' clock, a few ms early: a message published just before
            # subscribe() may arrive; one published after it is never missed.
            now_ms = int(time.time() * 1000 + self._clock_offset_ms) - 5
            state = self._channels[channel] = _Channel(self.stream_key(channel), f"{now_ms}-0")
            self._changed.set()
        state.subs.add(sub)
        return sub

    def _unsubscribe(self, sub: RedisSubscription) -> None:
        state = self._channels.get(sub.channel)
        if state is None:
            return
        state.subs.discard(sub)
        if not state.subs:
            del self._channels[sub.channel]
            self._changed.set()

    async def claim_lesson(self, lesson_id: str) -> str:
        if self.directory is None:
            raise RuntimeError("RedisBus has no lesson directory attached")
        return await self.directory.claim(lesson_id)

    async def release_lesson(self, lesson_id: str) -> None:
        # Called from a fire-and-forget task when a room empties: never raises. If Redis is
        # away, the entry expires with its TTL (or the idle release) instead.
        if self.directory is None:
            return
        try:
            await self.directory.release(lesson_id)
        except TRANSIENT as exc:
            log.warning("could not release lesson %s in the directory: %s", lesson_id, exc)

    # The reader ------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            if not self._channels:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            streams = {state.key: state.last_id for state in self._channels.values()}
            read = asyncio.ensure_future(
                self._reader.xread(streams, count=500, block=self.block_ms)  # type: ignore[arg-type]
            )
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                read.cancel()  # closing: the read must not outlive the loop
                with contextlib.suppress(asyncio.CancelledError, *TRANSIENT):
                    await read
                raise
            finally:
                changed.cancel()
            if not read.done():
                # Subscriptions changed: abandon this XREAD. redis-py drops a connection
                # whose command was cancelled; the next XREAD opens a clean one.
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError, *TRANSIENT):
                    await read
                await self._reader.connection_pool.disconnect()
                continue
            try:
                result = read.result()
            except TRANSIENT as exc:
                if self.connected:
                    log.warning("redis bus lost its connection (%s); reconnecting", exc)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if not self.connected:
                self.connected = True
                self.reconnects += 1
                log.info("redis bus reconnected; reading on from the last entry seen")
                with contextlib.suppress(*TRANSIENT):
                    await self._sync_clock()  # Redis may have restarted on another clock
            backoff = 0.05
            self._dispatch(result)

    def _dispatch(self, result: Any) -> None:
        by_key = {state.key: state for state in self._channels.values()}
        for raw_key, entries in result or ():
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            state = by_key.get(key)
            if state is None:
                continue  # unsubscribed while the read was in flight
            for raw_id, fields in entries:
                state.last_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
                self._deliver(state, fields)

    def _deliver(self, state: _Channel, fields: dict[Any, Any]) -> None:
        seq = int(fields.get(b"s", fields.get("s", 0)))
        raw = fields.get(b"m", fields.get("m", b"{}"))
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("redis bus: undecodable entry on %s dropped", state.key)
            return
        last = state.last_seq
        state.last_seq = seq
        if last is not None and seq != last + 1:
            reset = seq <= last
            missed = 0 if reset else seq - last - 1
            self.gaps += 1
            log.warning(
                "redis bus: %s on %s (last %d, now %d)",
                "sequence reset" if reset else f"{missed} message(s) missed",
                state.key,
                last,
                seq,
            )
            for sub in tuple(state.subs):
                sub._put_gap(missed, reset=reset, reason="reset" if reset else "trimmed")
        for sub in tuple(state.subs):
            sub._deliver(seq, message)


def connect_redis(url: str, **options: Any) -> Redis:
    """A client with timeouts, so a dead Redis is noticed instead of waited on forever."""
    options.setdefault("socket_connect_timeout", 2.0)
    options.setdefault("health_check_interval", 10)
    return Redis.from_url(url, **options)

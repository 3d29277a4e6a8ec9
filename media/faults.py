"""Fault injection on one peer's packets, for tests and drills: loss, delay, jitter, reordering
and a capped access link.

Off by default: transports use :data:`NO_FAULTS`, whose ``wrap`` returns the function
unchanged, so the hot path pays nothing. ``MediaService.set_faults(peer_id, to_peer=...,
from_peer=...)`` puts a :class:`FaultInjector` on what the server sends toward a peer
and/or on what arrives from it; the service refuses it in production (see
server/api/faults.py, docs/operations.md "Fault drills").

A packet passes the stages of a path from the server to a classroom, in order:

1. random loss (``drop_rate``), as on any lossy path;
2. one-way delay ``delay_ms`` plus a uniform random ``jitter_ms`` per packet (jitter larger
   than the packet spacing reorders, as a real jittery path does);
3. reordering: a fraction ``reorder_rate`` of packets is held back and sent just after the
   next one (or after ``REORDER_HOLD_S`` if none follows);
4. the access link (``rate_kbps``): a token bucket drains a queue of at most ``queue_ms`` worth
   of bytes, as a capped DSL/4G line would; what does not fit is dropped. The queue has two
   classes: packets the caller marks as priority (audio, RTCP) leave first and, when the
   queue is full, push out queued bulk packets (video) instead of being dropped themselves.

Bytes are counted as RTP/RTCP bytes (before SRTP and UDP/IP overhead). Deterministic for a
given ``seed`` apart from timing. The injector's counters tell what it did (``stats()``).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from typing import Any

Send = Callable[[bytes], None]
Priority = bool | Callable[[bytes], bool]

REORDER_HOLD_S = 0.02  # a held-back packet goes out after this if no later packet comes
MAX_DELAY_MS = 10_000.0
MIN_RATE_KBPS = 8.0


class NoFaults:
    """The null injector: sends go straight through."""

    active = False

    def wrap(self, send: Send, priority: Priority = False) -> Send:
        return send

    def stats(self) -> dict[str, Any]:
        return {}


NO_FAULTS = NoFaults()


class _Link:
    """The capped access link shared by every path wrapped by one injector (a peer has two
    transports and RTP + RTCP on each; one line carries them all)."""

    def __init__(self, rate_kbps: float, queue_ms: float) -> None:
        self.rate = rate_kbps * 1000.0 / 8.0  # bytes per second
        self.capacity = max(1500.0, self.rate * queue_ms / 1000.0)
        self.burst = max(3000.0, self.rate * 0.02)  # a shaped line: ~20 ms of burst
        self.tokens = self.burst
        self.at = -1.0
        self.urgent: deque[tuple[Send, bytes]] = deque()
        self.bulk: deque[tuple[Send, bytes]] = deque()
        self.queued = 0  # bytes in both queues
        self.timer: asyncio.TimerHandle | None = None
        self.dropped = 0
        self.pushed_out = 0  # bulk packets dropped to make room for priority ones
        self.max_queued = 0

    def _refill(self, now: float) -> None:
        if self.at >= 0:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def offer(self, send: Send, data: bytes, urgent: bool) -> None:
        loop = asyncio.get_running_loop()
        self._refill(loop.time())
        size = len(data)
        if not self.queued and self.tokens >= size:
            self.tokens -= size
            send(data)
            return
        if self.queued + size > self.capacity:
            if not urgent:
                self.dropped += 1
                return
            while self.bulk and self.queued + size > self.capacity:
                _, old = self.bulk.pop()  # the newest video goes first: older frames finish
                self.queued -= len(old)
                self.pushed_out += 1
            if self.queued + size > self.capacity:
                self.dropped += 1
                return
        (self.urgent if urgent else self.bulk).append((send, data))
        self.queued += size
        self.max_queued = max(self.max_queued, self.queued)
        self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is not None or not self.queued:
            return
        head = (self.urgent or self.bulk)[0][1]
        wait = max(0.0, (len(head) - self.tokens) / self.rate)
        self.timer = loop.call_later(wait, self._drain)

    def _drain(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        self._refill(loop.time())
        while self.urgent or self.bulk:
            queue = self.urgent or self.bulk
            send, data = queue[0]
            if self.tokens < len(data):
                break
            queue.popleft()
            self.tokens -= len(data)
            self.queued -= len(data)
            send(data)
        self._schedule(loop)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.urgent.clear()
        self.bulk.clear()
        self.queued = 0


class FaultInjector:
    """Loss, delay, jitter, reordering and a bitrate cap on the packets it wraps.

    One injector stands for one direction of one peer's line: every function it wraps shares
    its bitrate cap. Raises ValueError with the offending setting for anything out of range.
    """

    active = True

    def __init__(
        self,
        drop_rate: float = 0.0,
        delay_ms: float = 0.0,
        seed: int = 1,
        *,
        jitter_ms: float = 0.0,
        reorder_rate: float = 0.0,
        rate_kbps: float | None = None,
        queue_ms: float = 200.0,
    ) -> None:
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be in [0, 1], got {drop_rate}.")
        if not 0.0 <= reorder_rate < 1.0:
            raise ValueError(f"reorder_rate must be in [0, 1), got {reorder_rate}.")
        for name, value in (("delay_ms", delay_ms), ("jitter_ms", jitter_ms)):
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value:g}.")
            if value > MAX_DELAY_MS:
                raise ValueError(f"{name} must be at most {MAX_DELAY_MS:g}, got {value:g}.")
        if rate_kbps is not None and rate_kbps < MIN_RATE_KBPS:
            raise ValueError(f"rate_kbps must be at least {MIN_RATE_KBPS:g}, got {rate_kbps:g}.")
        if not 10.0 <= queue_ms <= 5000.0:
            raise ValueError(f"queue_ms must be in [10, 5000], got {queue_ms:g}.")
        self.drop_rate = drop_rate
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.reorder_rate = reorder_rate
        self.rate_kbps = rate_kbps
        self.queue_ms = queue_ms
        self.seed = seed
        self._random = random.Random(seed)
        self._link = _Link(rate_kbps, queue_ms) if rate_kbps is not None else None
        self.dropped = 0
        self.passed = 0
        self.reordered = 0

    def settings(self) -> dict[str, Any]:
        return {
            "drop_rate": self.drop_rate,
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "reorder_rate": self.reorder_rate,
            "rate_kbps": self.rate_kbps,
            "queue_ms": self.queue_ms,
            "seed": self.seed,
        }

    def stats(self) -> dict[str, Any]:
        link = self._link
        return {
            "passed": self.passed,
            "dropped": self.dropped,
            "reordered": self.reordered,
            "cap_dropped": link.dropped if link else 0,
            "cap_pushed_out": link.pushed_out if link else 0,
            "cap_max_queued_bytes": link.max_queued if link else 0,
        }

    def close(self) -> None:
        """Forget queued packets (the faults were removed or the peer left)."""
        if self._link is not None:
            self._link.close()

    def wrap(self, send: Send, priority: Priority = False) -> Send:
        """``send`` behind this injector. ``priority`` (a bool, or a function of the packet)
        marks packets the capped link serves first (audio, RTCP)."""
        chance = self._random.random
        delay = self.delay_ms / 1000.0
        jitter = self.jitter_ms / 1000.0
        link = self._link

        # Stage 4: the access link.
        if link is not None:
            if callable(priority):
                is_urgent = priority

                def to_link(data: bytes) -> None:
                    link.offer(send, data, is_urgent(data))
            else:
                urgent = bool(priority)

                def to_link(data: bytes) -> None:
                    link.offer(send, data, urgent)

            out: Send = to_link
        else:
            out = send

        # Stage 3: reordering (per wrapped path; reordering RTP against RTCP means nothing).
        if self.reorder_rate:
            after_reorder = out
            held: list[bytes] = []
            timer: list[asyncio.TimerHandle] = []

            def release() -> None:
                timer.clear()
                while held:
                    after_reorder(held.pop(0))

            def reorder(data: bytes) -> None:
                if held:
                    after_reorder(data)
                    if timer:
                        timer.pop().cancel()
                    release()
                    return
                if chance() < self.reorder_rate:
                    self.reordered += 1
                    held.append(data)
                    timer.append(asyncio.get_running_loop().call_later(REORDER_HOLD_S, release))
                    return
                after_reorder(data)

            out = reorder

        # Stage 2: delay and jitter.
        if delay or jitter:
            after_delay = out

            def delayed(data: bytes) -> None:
                wait = delay + (chance() * jitter if jitter else 0.0)
                asyncio.get_running_loop().call_later(wait, after_delay, data)

            out = delayed

        # Stage 1: random loss.
        after_loss = out

        def faulty_send(data: bytes) -> None:
            if self.drop_rate and chance() < self.drop_rate:
                self.dropped += 1
                return
            self.passed += 1
            after_loss(data)

        return faulty_send


AnyFaults = FaultInjector | NoFaults

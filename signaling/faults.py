"""Fault injection on signaling, for tests and drills: lost or late messages, a lossy bus.

Off by default: the RoomManager wraps connections only when it was given a
:class:`SignalingFaults` registry, which the app builds only with ``TONGKE_FAULTS=true``
outside production (docs/operations.md "Fault drills").

- :class:`SignalingFaults` holds, per peer id, faults on the messages sent toward the peer
  and on those arriving from it (drop a fraction, delay by some ms).
- :class:`FaultyConnection` wraps one connection; it looks up its peer's faults on every
  frame. Before ``join``/``resume`` has named the peer, the frame itself is asked
  (``identify``: a resume token, or a join token's classroom): a drill on a classroom holds
  across its reconnects, so a "dead" uplink cannot resume through a fresh WebSocket.
  Delays keep the order of frames, as a slow TCP stream does.
- :class:`FaultyBus` wraps a bus: published messages are dropped or delivered late.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signaling.bus import Bus, Subscription
from signaling.session import Connection

if TYPE_CHECKING:
    from signaling.session import Session

MAX_DELAY_MS = 10_000.0


@dataclass(frozen=True, slots=True)
class MessageFaults:
    """Faults on one direction of a peer's signaling: drop a fraction, delay the rest."""

    drop: float = 0.0
    delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop <= 1.0:
            raise ValueError(f"drop must be in [0, 1], got {self.drop}.")
        if not 0.0 <= self.delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"delay_ms must be in [0, {MAX_DELAY_MS:g}], got {self.delay_ms:g}.")

    @property
    def active(self) -> bool:
        return bool(self.drop or self.delay_ms)


NONE = MessageFaults()


@dataclass(slots=True)
class PeerMessageFaults:
    to_peer: MessageFaults = NONE
    from_peer: MessageFaults = NONE
    dropped_to: int = 0
    dropped_from: int = 0
    delayed: int = 0

    def stats(self) -> dict[str, int]:
        return {
            "dropped_to_peer": self.dropped_to,
            "dropped_from_peer": self.dropped_from,
            "delayed": self.delayed,
        }


@dataclass
class SignalingFaults:
    """The registry of signaling faults by peer id (one per RoomManager)."""

    seed: int = 1
    peers: dict[str, PeerMessageFaults] = field(default_factory=dict)
    # What a drill asked for, by peer id (the admin API's own record, shown back to it).
    drills: dict[str, Any] = field(default_factory=dict)
    # When a drill with a duration ends (event-loop time), by peer id.
    deadlines: dict[str, float] = field(default_factory=dict)
    # The peer id a frame on a not yet joined connection speaks for (set by the RoomManager).
    identify: Callable[[Session | None, str | bytes], str | None] | None = None

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def move(self, old_peer_id: str, new_peer_id: str) -> bool:
        """A new connection took the classroom over (a join replacing a lost peer): its drill
        goes with it. True when there was one."""
        moved = False
        for table in (self.peers, self.drills, self.deadlines):
            if old_peer_id in table:
                table[new_peer_id] = table.pop(old_peer_id)
                moved = True
        return moved

    def due(self, now: float) -> list[str]:
        """The peers whose drill has run its duration (forgotten here; the caller clears)."""
        ended = [peer_id for peer_id, at in self.deadlines.items() if at <= now]
        for peer_id in ended:
            del self.deadlines[peer_id]
        return ended

    def set(self, peer_id: str, to_peer: MessageFaults, from_peer: MessageFaults) -> None:
        if not (to_peer.active or from_peer.active):
            self.peers.pop(peer_id, None)
            return
        self.peers[peer_id] = PeerMessageFaults(to_peer, from_peer)

    def clear(self, peer_id: str) -> None:
        self.peers.pop(peer_id, None)
        self.drills.pop(peer_id, None)
        self.deadlines.pop(peer_id, None)

    def get(self, peer_id: str) -> PeerMessageFaults | None:
        return self.peers.get(peer_id)

    def wrap(self, conn: Connection) -> FaultyConnection:
        return FaultyConnection(conn, self)


class FaultyConnection:
    """A Connection whose frames suffer the faults of the peer its session carries."""

    def __init__(self, inner: Connection, faults: SignalingFaults) -> None:
        self.inner = inner
        self.faults = faults
        self.session: Session | None = None  # set by the RoomManager once the session exists

    def _faults(self, frame: str | bytes | None = None) -> PeerMessageFaults | None:
        session = self.session
        peer = session.peer if session is not None else None
        if peer is not None:
            return self.faults.get(peer.peer_id)
        identify = self.faults.identify
        if frame is None or identify is None or not self.faults.peers:
            return None
        peer_id = identify(session, frame)  # a join or resume of a peer under a drill
        return None if peer_id is None else self.faults.get(peer_id)

    async def receive(self) -> str | bytes:
        while True:
            data = await self.inner.receive()
            faults = self._faults(data)
            if faults is None or not faults.from_peer.active:
                return data
            if faults.from_peer.drop and self.faults.random.random() < faults.from_peer.drop:
                faults.dropped_from += 1
                continue  # lost on the way: the server never sees it
            if faults.from_peer.delay_ms:
                faults.delayed += 1
                await asyncio.sleep(faults.from_peer.delay_ms / 1000.0)
            return data

    async def send(self, text: str) -> None:
        faults = self._faults()
        if faults is not None and faults.to_peer.active:
            if faults.to_peer.drop and self.faults.random.random() < faults.to_peer.drop:
                faults.dropped_to += 1
                return
            if faults.to_peer.delay_ms:
                faults.delayed += 1
                await asyncio.sleep(faults.to_peer.delay_ms / 1000.0)
        await self.inner.send(text)

    async def close(self, code: int, reason: str) -> None:
        await self.inner.close(code, reason)


class FaultyBus:
    """A bus that loses a fraction ``drop`` of published messages and delivers the rest
    ``delay_ms`` late (the directory calls pass through: they model the store, not the wire)."""

    def __init__(self, inner: Bus, drop: float = 0.0, delay_ms: float = 0.0, seed: int = 1):
        MessageFaults(drop, delay_ms)  # validates
        self.inner = inner
        self.node_id = inner.node_id
        self.drop = drop
        self.delay_ms = delay_ms
        self.dropped = 0
        self._random = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()

    async def ping(self) -> None:
        await self.inner.ping()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        if self.drop and self._random.random() < self.drop:
            self.dropped += 1
            return
        if not self.delay_ms:
            await self.inner.publish(channel, message)
            return

        async def later() -> None:
            await asyncio.sleep(self.delay_ms / 1000.0)
            await self.inner.publish(channel, message)

        # Late, but the publisher is not held up (a laggy bus, not a slow caller).
        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def subscribe(self, channel: str, maxsize: int = 256) -> Subscription:
        return self.inner.subscribe(channel, maxsize)

    async def claim_lesson(self, lesson_id: str) -> str:
        return await self.inner.claim_lesson(lesson_id)

    async def release_lesson(self, lesson_id: str) -> None:
        await self.inner.release_lesson(lesson_id)

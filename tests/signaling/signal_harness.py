"""Signaling test harness: a RoomManager with in-memory connections at the transport boundary.

Imported by conftest.py and the tests.

FakeConnection implements signaling.session.Connection (what a WebSocket is to the room);
RecordingMedia implements the MediaPort the media plane will provide, so room tests can
watch publish answers, producer reports and subscription offers without an SFU.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from server.tokens import JoinTokens
from signaling.bus import Bus, LocalBus
from signaling.grants import Grant, Role, default_grant
from signaling.hooks import ClassroomInfo, LessonInfo, LessonState, NullLessonHooks
from signaling.media_port import (
    MediaListener,
    OfferedConsumer,
    PeerInfo,
    SubscriptionOffer,
    TrackOffer,
)
from signaling.policy import Layer, ProducerRef, PublishedTrack
from signaling.rooms import RoomConfig, RoomManager
from signaling.session import ConnectionClosed

SECRET = "signaling-tests-secret-0123456789-0123456789"
LESSON_ID = "lesson-1"
LEAD_ROOM = "lead-room"
RECEIVERS = ("r1", "r2", "r3")
FAST = RoomConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=10.0, resume_window_s=5.0)


def lesson_info(
    lesson_id: str = LESSON_ID,
    state: LessonState = LessonState.SCHEDULED,
    receivers: Sequence[str] = RECEIVERS,
) -> LessonInfo:
    return LessonInfo(
        id=lesson_id,
        title="分数的初步认识",
        state=state,
        lead=ClassroomInfo(LEAD_ROOM, "城关一小 三(1)班", "城关一小"),
        receivers=tuple(ClassroomInfo(r, f"教学点 {r}", "石门教学点") for r in receivers),
        subject="数学",
        grade="三年级",
        teacher="王老师",
        school="城关一小",
    )


class FakeConnection:
    """An in-memory WebSocket: the test is the client side."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.stalled = False  # when set, send() never returns (a peer that stopped reading)

    async def receive(self) -> str | bytes:
        item = await self.inbox.get()
        if item is None:
            raise ConnectionClosed()
        return item

    async def send(self, text: str) -> None:
        if self.closed.is_set():
            raise ConnectionClosed()
        if self.stalled:
            await asyncio.Event().wait()
        self.outbox.put_nowait(text)

    async def close(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()


class Client:
    """One test peer: sends frames, and reads the server's messages by type or id."""

    _ids = itertools.count(1)

    def __init__(self, rooms: RoomManager, verify: Callable[[str], Grant]) -> None:
        self.conn = FakeConnection()
        self.task = asyncio.create_task(rooms.serve(self.conn, verify))
        self.buffer: list[dict[str, Any]] = []
        self.joined: dict[str, Any] = {}

    def send(self, **message: Any) -> None:
        self.conn.inbox.put_nowait(json.dumps(message))

    def send_raw(self, frame: str | bytes) -> None:
        self.conn.inbox.put_nowait(frame)

    def drop(self) -> None:
        """The network goes away without a close (the server sees the socket end)."""
        self.conn.inbox.put_nowait(None)

    def _pull_ready(self) -> None:
        while not self.conn.outbox.empty():
            message = json.loads(self.conn.outbox.get_nowait())
            if message["type"] != "heartbeat":
                self.buffer.append(message)

    def pending(self) -> list[dict[str, Any]]:
        self._pull_ready()
        return list(self.buffer)

    def types(self) -> list[str]:
        return [m["type"] for m in self.pending()]

    async def expect(
        self, match: str | Callable[[dict[str, Any]], bool], wait_s: float = 3.0
    ) -> dict[str, Any]:
        """The first message (buffered or coming) of that type or matching the predicate."""
        test = (lambda m: m["type"] == match) if isinstance(match, str) else match
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            self._pull_ready()
            for i, message in enumerate(self.buffer):
                if test(message):
                    return self.buffer.pop(i)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {match!r} within {wait_s}s; got {self.types()}")
            try:
                text = await asyncio.wait_for(self.conn.outbox.get(), left)
            except TimeoutError:
                continue
            message = json.loads(text)
            if message["type"] != "heartbeat":
                self.buffer.append(message)

    async def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Sends a message with a fresh id and returns the reply carrying that id."""
        id = f"q{next(self._ids)}"
        self.send(type=type, id=id, **fields)
        return await self.expect(lambda m: m.get("id") == id)

    async def settle(self) -> None:
        """Lets the server process what was sent so far (a ping round trip)."""
        await self.request("ping")

    async def wait_closed(self, wait_s: float = 3.0) -> int | None:
        await asyncio.wait_for(self.conn.closed.wait(), wait_s)
        return self.conn.close_code

    def clear(self) -> None:
        self._pull_ready()
        self.buffer.clear()


class RecordingMedia:
    """A MediaPort stand-in: answers offers, reports producers, records what was asked."""

    def __init__(self) -> None:
        self.listener: MediaListener | None = None
        self.subscriptions: dict[str, frozenset[ProducerRef]] = {}
        self.answers: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self._n = itertools.count(1)

    def set_listener(self, listener: MediaListener) -> None:
        self.listener = listener

    async def publish(self, peer: PeerInfo, sdp: str, tracks: Sequence[TrackOffer]) -> str:
        layers: dict[Any, set[Layer]] = {}
        for t in tracks:
            layers.setdefault(t.source, set()).add(t.layer)
        published = tuple(
            PublishedTrack(peer.peer_id, peer.role, peer.classroom_id, s, frozenset(ls))
            for s, ls in layers.items()
        )
        assert self.listener is not None
        self.listener.producers_changed(peer.lesson_id, peer.peer_id, published)
        return f"answer-to:{sdp}"

    async def set_subscriptions(
        self, peer: PeerInfo, refs: frozenset[ProducerRef]
    ) -> SubscriptionOffer | None:
        if self.subscriptions.get(peer.peer_id) == refs:
            return None
        self.subscriptions[peer.peer_id] = refs
        consumers = tuple(
            OfferedConsumer(f"c{next(self._n)}", str(i), ref) for i, ref in enumerate(sorted(refs))
        )
        return SubscriptionOffer(f"offer-{next(self._n)}", consumers)

    async def subscribe_answer(self, peer: PeerInfo, sdp: str) -> SubscriptionOffer | None:
        self.answers.append((peer.peer_id, sdp))
        return None

    async def close_peer(self, peer: PeerInfo) -> None:
        self.closed.append(peer.peer_id)
        self.subscriptions.pop(peer.peer_id, None)

    def last_heard_ms(self, peer_id: str) -> int | None:
        return None  # no media flows here: peers are judged by their WebSocket alone

    def clear_faults(self, peer_id: str) -> None:
        return None

    def move_faults(self, old_peer_id: str, new_peer_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


class Signal:
    """A RoomManager with one lesson (three receiving classrooms) and token minting."""

    def __init__(self, config: RoomConfig, media: Any = None, bus: Bus | None = None) -> None:
        self.hooks = NullLessonHooks({LESSON_ID: lesson_info()})
        self.tokens = JoinTokens(SECRET, ttl_s=600)
        self.media = media
        self.rooms = RoomManager(bus or LocalBus(), self.hooks, config, media=media)
        self.clients: list[Client] = []

    def token(self, role: Role, classroom_id: str | None = None, **grant: Any) -> str:
        base = default_grant(grant.pop("lesson_id", LESSON_ID), role, f"{role} {classroom_id}")
        return self.tokens.issue(replace(base, classroom_id=classroom_id, **grant))

    def connect(self) -> Client:
        client = Client(self.rooms, self.tokens.verify)
        self.clients.append(client)
        return client

    async def join(self, role: Role, classroom_id: str | None = None, **grant: Any) -> Client:
        client = self.connect()
        reply = await client.request(
            "join", version=1, token=self.token(role, classroom_id, **grant)
        )
        assert reply["type"] == "joined", reply
        client.joined = reply
        return client

    async def lead(self) -> Client:
        return await self.join(Role.LEAD, LEAD_ROOM)

    async def receiver(self, classroom_id: str = "r1") -> Client:
        return await self.join(Role.RECEIVER, classroom_id)

    async def patrol(self) -> Client:
        return await self.join(Role.PATROL)

    async def live(self) -> Client:
        """A lead that has started the lesson."""
        lead = await self.lead()
        assert (await lead.request("start_lesson"))["type"] == "ok"
        return lead

    async def aclose(self) -> None:
        await self.rooms.close()
        for client in self.clients:
            client.drop()
        await asyncio.gather(*(c.task for c in self.clients), return_exceptions=True)

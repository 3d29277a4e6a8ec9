"""A synthetic terminal: one classroom (or patrol) on the real signaling protocol.

It joins like a browser does: join link -> ``POST /api/join/{code}`` -> WebSocket ``join``
-> ``publish`` (client offer) and ``subscribe_offer`` / ``subscribe_answer`` (server offer).
Media goes through :class:`SyntheticPublisher` and :class:`SyntheticReceiver`, so the
terminal costs almost no CPU. Every server message is kept in ``events`` and can be
awaited with :meth:`SyntheticTerminal.wait_for`; tests, ``tongke demo`` and ``tongke
bench`` all drive lessons through this one class.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from aiortc import RTCIceServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver

Message = dict[str, Any]


class TerminalError(RuntimeError):
    """The service refused a request; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every terminal: httpx builds a new one per client by default,
    loading the CA bundle (~0.1 s of blocked event loop each), which stalled 100 joins."""
    return httpx.create_ssl_context()


def ice_servers_from(joined: Message) -> list[RTCIceServer]:
    """The ``joined`` reply's ICE servers (STUN/TURN with credentials) as aiortc objects."""
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in joined.get("ice_servers", [])
    ]


class SyntheticTerminal:
    """One synthetic terminal. ``publish=False`` joins without sending media."""

    def __init__(
        self,
        base_url: str,
        code: str,
        *,
        host_addresses: Sequence[str] | None = None,
        publish: bool = True,
        decode: bool = False,
        codec: str = "vp8",
        request_timeout_s: float = 30.0,
        relay_only: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.code = code
        self.host_addresses = list(host_addresses) if host_addresses is not None else None
        self.publish = publish
        self.decode = decode
        self.codec = codec
        self.request_timeout_s = request_timeout_s
        # Media only through the TURN servers of ``joined.ice_servers`` (iceTransportPolicy relay).
        self.relay_only = relay_only
        self.publisher: SyntheticPublisher | None = None
        self.receiver: SyntheticReceiver | None = None
        self.joined: Message = {}
        self.events: list[tuple[float, Message]] = []
        self.closed_code: int | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._changed = asyncio.Condition()
        self._ws: ClientConnection | None = None
        self._ws_url = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._receiver_ready = asyncio.Event()

    # -- joining -----------------------------------------------------------------------

    async def grant(self) -> Message:
        """Redeem the join link over HTTP: the WebSocket URL and a join token."""
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=30, verify=_tls_context()
        ) as http:
            response = await http.post(f"/api/join/{self.code}")
        if response.status_code != 200:
            is_json = response.headers.get("content-type") == "application/json"
            body = response.json() if is_json else {}
            raise TerminalError(str(body.get("code", response.status_code)), response.text)
        return response.json()

    async def connect(self) -> Message:
        """Join the lesson over signaling (no media yet); returns the ``joined`` reply."""
        grant = await self.grant()
        ws_url = grant["ws_url"]
        if not ws_url.startswith(("ws://", "wss://")):
            # Relative: this node. Absolute: the lesson's home node (many nodes).
            ws_url = self.base_url.replace("http", "ws", 1) + ws_url
        self._ws_url = ws_url
        self._ws = await connect(ws_url, max_size=1 << 22)
        self._spawn(self._read())
        self.joined = await self.request({"type": "join", "version": 1, "token": grant["token"]})
        self._spawn(self._ping(float(self.joined["heartbeat_interval_s"])))
        return self.joined

    async def start(self, *, start_lesson: bool = False) -> None:
        """Join, optionally start the lesson (lead), and publish what the role allows."""
        await self.connect()
        if start_lesson and self.joined["lesson"]["state"] != "live":
            await self.request({"type": "start_lesson"})
        ice = ice_servers_from(self.joined)
        self.receiver = SyntheticReceiver(
            ice_servers=ice,
            host_addresses=self.host_addresses,
            decode=self.decode,
            relay_only=self.relay_only,
        )
        self._receiver_ready.set()
        allowed = set(self.joined["you"]["publish"])
        if self.publish and allowed:
            await self.publish_media(ice)

    async def resume(self) -> Message:
        """Come back as the same peer after the connection was lost: a new WebSocket,
        ``resume`` with the last resume token, then fresh media (the server released the old
        transports when it lost the peer). Returns the ``joined`` reply (``resumed: true``)."""
        token = self.joined.get("resume_token")
        if not token or not self._ws_url:
            raise TerminalError("not_joined", "resume needs an earlier join")
        await self._stop()
        self._receiver_ready.clear()
        self._ws = await connect(self._ws_url, max_size=1 << 22)
        self.closed_code = None
        self._spawn(self._read())
        self.joined = await self.request({"type": "resume", "version": 1, "resume_token": token})
        self._spawn(self._ping(float(self.joined["heartbeat_interval_s"])))
        ice = ice_servers_from(self.joined)
        self.receiver = SyntheticReceiver(
            ice_servers=ice,
            host_addresses=self.host_addresses,
            decode=self.decode,
            relay_only=self.relay_only,
        )
        self._receiver_ready.set()
        if self.publish and set(self.joined["you"]["publish"]):
            await self.publish_media(ice)
        return self.joined

    async def publish_media(self, ice: Sequence[RTCIceServer] = ()) -> None:
        publisher = self.publisher = SyntheticPublisher(
            ice_servers=ice,
            host_addresses=self.host_addresses,
            codec=self.codec,
            relay_only=self.relay_only,
        )
        offer = await publisher.create_offer()
        allowed = set(self.joined["you"]["publish"])
        tracks = [
            {"mid": t.mid, "source": t.source, "layer": t.layer}
            for t in publisher.tracks
            if t.source in allowed
        ]
        reply = await self.request({"type": "publish", "sdp": offer, "tracks": tracks})
        await publisher.accept_answer(reply["sdp"])

    # -- requests and events -------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self._ws is None:
            raise TerminalError("not_connected", "the terminal has no WebSocket")
        await self._ws.send(json.dumps(message))

    async def request(self, message: Message) -> Message:
        """Send ``message`` with a fresh id; return the reply or raise :class:`TerminalError`."""
        ident = str(next(self._ids))
        future = self._waiting[ident] = asyncio.get_running_loop().create_future()
        try:
            await self.send({**message, "id": ident})
            reply = await asyncio.wait_for(future, self.request_timeout_s)
        finally:
            self._waiting.pop(ident, None)
        if reply["type"] == "error":
            raise TerminalError(reply["code"], reply.get("message", ""))
        return reply

    async def wait_for(
        self,
        kind: str,
        predicate: Callable[[Message], bool] | None = None,
        *,
        within_s: float = 10.0,
        since: int = 0,
    ) -> Message:
        """The first event of type ``kind`` (from index ``since``) that ``predicate`` accepts."""

        def find() -> Message | None:
            for _, message in self.events[since:]:
                if message["type"] == kind and (predicate is None or predicate(message)):
                    return message
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(find), within_s)
        found = find()
        assert found is not None
        return found

    def of_type(self, kind: str) -> list[Message]:
        return [m for _, m in self.events if m["type"] == kind]

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                ident = message.get("id")
                waiting = self._waiting.get(ident) if ident is not None else None
                if waiting is not None and not waiting.done():
                    waiting.set_result(message)
                if message["type"] == "subscribe_offer":
                    # Answered off the reader so replies to our own requests keep flowing.
                    self._spawn(self._answer(message["sdp"]))
                self.events.append((time.monotonic(), message))
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass  # ``closed_code`` tells how; waiters wake below
        finally:
            self.closed_code = self._ws.close_code
            async with self._changed:
                self._changed.notify_all()

    async def _answer(self, sdp: str) -> None:
        await self._receiver_ready.wait()  # an offer may come right after ``joined``
        assert self.receiver is not None
        answer = await self.receiver.accept_offer(sdp)
        with contextlib.suppress(TerminalError):  # superseded offers are refused; fine
            await self.request({"type": "subscribe_answer", "sdp": answer})

    async def _ping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.request({"type": "ping"})

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what arrived -------------------------------------------------------------------

    def frames(self, kind: str = "video") -> int:
        if self.receiver is None:
            return 0
        return sum(s.frames for s in self.receiver.of_kind(kind))

    async def close(self) -> None:
        await self._stop()

    async def _stop(self) -> None:
        # Connection and media only: ``events`` stay (a resume continues the same story).
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._ws is not None:
            await self._ws.close()
        if self.publisher is not None:
            await self.publisher.close()
        if self.receiver is not None:
            await self.receiver.close()
        self.publisher = self.receiver = None

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
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from aiortc import RTCIceServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from media.sfu_types import ice_servers_from
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver

Message = dict[str, Any]

# Close codes after which coming back is pointless: origin refused, replaced, lesson ended.
FINAL_CLOSE_CODES = frozenset({4403, 4409, 4410})
logger = logging.getLogger(__name__)

# The lesson moved to another node (docs/protocol.md): join again from the link, no resume.
MOVED_CLOSE_CODE = 4301
CLOSE_STEP_S = 8.0  # the most one step of close() may take (see SyntheticTerminal._stop)
# Refusals a reconnect cannot fix (the page's FATAL set, plus the join link's own errors).
FINAL_ERRORS = frozenset(
    {
        "token_invalid", "wrong_lesson", "lesson_not_found", "lesson_ended", "forbidden",
        "not_on_roster", "unsupported_version", "replaced",
        "link_not_found", "link_revoked", "link_expired",
    }
)  # fmt: skip
# A request unanswered this long fails (a slow join under load included).
REQUEST_TIMEOUT_S = 30.0
# The longest wait between two reconnect attempts.
MAX_BACKOFF_S = 2.0
# What a node that is down, restarting or unreachable raises on the way in.
_UNREACHABLE = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, httpx.HTTPError)


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
        relay_only: bool = False,
        auto_reconnect: bool = False,
        fallback_urls: Sequence[str] = (),
        connect_timeout_s: float | None = None,
        header_only: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Opening the join link and the WebSocket; None: short (10 s, 5 s) so a dead node is
        # noticed. A load test of 100 joins at once on a busy machine allows more.
        self.connect_timeout_s = connect_timeout_s
        # Other nodes that also answer the join link, tried in turn when one is down (a
        # district's address usually reaches any live node; tests name the nodes).
        self.fallback_urls = [u.rstrip("/") for u in fallback_urls]
        # On a dropped connection (or close 4301, the lesson moved): resume on the same node
        # while the resume window allows, else open the join link again (which names the
        # lesson's current home, placed again if its node died), join, republish and
        # resubscribe; with backoff up to MAX_BACKOFF_S. `events` run on across connections.
        self.auto_reconnect = auto_reconnect
        self.reconnects = 0
        # Every successful join or resume: (monotonic time, WebSocket URL, resumed).
        self.joins: list[tuple[float, str, bool]] = []
        # Every connection lost after a join or resume: (monotonic time, close code).
        self.drops: list[tuple[float, int | None]] = []
        # Why reconnecting stopped for good (a final refusal), if it did.
        self.gave_up: TerminalError | None = None
        self.code = code
        self.host_addresses = list(host_addresses) if host_addresses is not None else None
        self.publish = publish
        self.decode = decode
        # Without decode: count received media from the clear SRTP header only (load tests).
        self.header_only = header_only
        self.codec = codec
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
        self._start_lesson = False
        # True from a completed join/resume (media up) until the connection drops.
        self._live = False
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None

    # -- joining -----------------------------------------------------------------------

    async def grant(self) -> Message:
        """Redeem the join link over HTTP: the WebSocket URL and a join token. A node that is
        down (or answers 5xx) passes the turn to the next of ``fallback_urls``."""
        urls = [self.base_url, *self.fallback_urls]
        for i, url in enumerate(urls):
            try:
                async with httpx.AsyncClient(
                    base_url=url, timeout=self.connect_timeout_s or 10, verify=_tls_context()
                ) as http:
                    response = await http.post(f"/api/join/{self.code}")
            except httpx.TransportError:
                if i == len(urls) - 1:
                    raise
                continue
            if response.status_code < 500 or i == len(urls) - 1:
                break
        if response.status_code != 200:
            is_json = response.headers.get("content-type") == "application/json"
            body = response.json() if is_json else {}
            # The API's one error shape is {"error": {"code", "message"}}.
            error = body.get("error") if isinstance(body.get("error"), dict) else body
            raise TerminalError(str(error.get("code", response.status_code)), response.text)
        granted = response.json()
        ws_url = granted["ws_url"]
        if not ws_url.startswith(("ws://", "wss://")):
            # Relative: the node that answered. Absolute: the lesson's home (many nodes).
            granted["ws_url"] = url.replace("http", "ws", 1) + ws_url
        return granted

    async def _open(self, ws_url: str) -> None:
        self._ws_url = ws_url
        # Short timeouts: a dead node is noticed, never waited on for long.
        self._ws = await connect(
            ws_url, max_size=1 << 22, open_timeout=self.connect_timeout_s or 5, close_timeout=2
        )
        self.closed_code = None
        self._reader = self._spawn(self._read())

    async def connect(self) -> Message:
        """Join the lesson over signaling (no media yet); returns the ``joined`` reply.

        A ``wrong_node`` refusal (the grant named a node that is no longer the lesson's
        home) is followed: the link is opened again and names the current home."""
        for attempt in range(3):
            grant = await self.grant()
            await self._open(grant["ws_url"])
            try:
                self.joined = await self.request(
                    {"type": "join", "version": 1, "token": grant["token"]}
                )
            except TerminalError as exc:
                if exc.code != "wrong_node" or attempt == 2:
                    raise
                await self._stop()
                continue
            break
        self._spawn(self._ping(float(self.joined["heartbeat_interval_s"])))
        return self.joined

    async def start(self, *, start_lesson: bool = False) -> None:
        """Join, optionally start the lesson (lead), and publish what the role allows."""
        self._start_lesson = start_lesson
        await self.connect()
        await self._media_up()

    async def rejoin(self) -> Message:
        """Join again from the join link, as a new peer: the link names the lesson's current
        home (another node if the old one died), then publish and subscribe afresh. The
        lesson's state (live, roster) comes from the database, so the room picks up there."""
        await self._stop()
        self._receiver_ready.clear()
        await self.connect()
        await self._media_up()
        return self.joined

    async def _media_up(self) -> None:
        if self._start_lesson and self.joined["lesson"]["state"] != "live":
            await self.request({"type": "start_lesson"})
        await self._fresh_media(resumed=False)

    async def _fresh_media(self, *, resumed: bool) -> None:
        """After a join or resume: a new receiver, then publish what the role allows."""
        # The ``joined`` reply's STUN/TURN servers, credentials included.
        ice = ice_servers_from(self.joined.get("ice_servers", []))
        self.receiver = SyntheticReceiver(
            ice_servers=ice,
            host_addresses=self.host_addresses,
            decode=self.decode,
            relay_only=self.relay_only,
            header_only=self.header_only,
        )
        self._receiver_ready.set()
        if self.publish and set(self.joined["you"]["publish"]):
            await self.publish_media(ice)
        self._went_live(resumed=resumed)

    async def resume(self) -> Message:
        """Come back as the same peer after the connection was lost: a new WebSocket,
        ``resume`` with the last resume token, then fresh media (the server released the old
        transports when it lost the peer). Returns the ``joined`` reply (``resumed: true``)."""
        token = self.joined.get("resume_token")
        if not token or not self._ws_url:
            raise TerminalError("not_joined", "resume needs an earlier join")
        await self._stop()
        self._receiver_ready.clear()
        await self._open(self._ws_url)
        self.joined = await self.request({"type": "resume", "version": 1, "resume_token": token})
        self._spawn(self._ping(float(self.joined["heartbeat_interval_s"])))
        await self._fresh_media(resumed=True)
        return self.joined

    # -- coming back by itself (auto_reconnect) --------------------------------------------

    def _went_live(self, *, resumed: bool) -> None:
        self.joins.append((time.monotonic(), self._ws_url, resumed))
        self._live = True
        if self._reader is not None and self._reader.done():
            self._connection_lost()  # it dropped while the media came up

    def _connection_lost(self) -> None:
        if not self._live:
            return  # a join or resume in progress: whoever runs it sees the failure
        self._live = False
        self.drops.append((time.monotonic(), self.closed_code))
        if not self.auto_reconnect or self._closing or self.closed_code in FINAL_CLOSE_CODES:
            return
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.ensure_future(self._reconnect())

    def _may_resume(self) -> bool:
        window = float(self.joined.get("resume_window_s", 0))
        return bool(self.joined.get("resume_token")) and (
            time.monotonic() - self.drops[-1][0] < window - 0.5
        )

    async def _reconnect(self) -> None:
        """Resume on the same node while the window allows, else join again from the link;
        backoff with jitter between attempts, until it works or a refusal is final."""
        moved = False
        attempt = 0
        while not self._closing:
            # After 4301 the old node has no room for us any more: straight to the link.
            moved = moved or self.closed_code == MOVED_CLOSE_CODE
            attempt += 1
            delay = min(MAX_BACKOFF_S, 0.1 * 2 ** (attempt - 1))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter: no thundering herd
            try:
                await self._come_back(resume=not moved and self._may_resume())
            except TerminalError as exc:
                if exc.code in FINAL_ERRORS:
                    self.gave_up = exc
                    await self._stop()
                    return
                continue
            except _UNREACHABLE:
                continue
            if self._live:
                self.reconnects += 1
                return
            # Dropped again while coming back: go on trying.

    async def _come_back(self, *, resume: bool) -> None:
        if resume:
            try:
                await self.resume()
                return
            except TerminalError as exc:
                if exc.code in FINAL_ERRORS:
                    raise
                # resume_failed (the window passed, or the room moved): join from the link.
            except _UNREACHABLE:
                pass  # the node went away: the join link knows where the lesson lives now
        await self.rejoin()

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
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # arrives as the reply does, and a task that ignores close() never ends.
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                reply = await future
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

        async with self._changed, asyncio.timeout(within_s):
            await self._changed.wait_for(find)
        found = find()
        assert found is not None
        return found

    def of_type(self, kind: str) -> list[Message]:
        return [m for _, m in self.events if m["type"] == kind]

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        cancelled = False
        try:
            async for frame in ws:
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
        except asyncio.CancelledError:
            cancelled = True  # stopped on purpose (close, resume, rejoin)
            raise
        finally:
            self.closed_code = ws.close_code
            # Requests in flight get no reply now: fail them rather than let them time out.
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(
                        TerminalError("connection_closed", f"closed ({self.closed_code})")
                    )
            async with self._changed:
                self._changed.notify_all()
            if not cancelled and ws is self._ws:
                self._connection_lost()

    async def _answer(self, sdp: str) -> None:
        await self._receiver_ready.wait()  # an offer may come right after ``joined``
        assert self.receiver is not None
        answer = await self.receiver.accept_offer(sdp)
        with contextlib.suppress(TerminalError):  # superseded offers are refused; fine
            await self.request({"type": "subscribe_answer", "sdp": answer})

    async def _ping(self, interval: float) -> None:
        # A server silent past its own heartbeat timeout (a dead machine sends no RST) is
        # given up on, so that auto_reconnect can take over.
        silent_s = float(self.joined.get("heartbeat_timeout_s", 6.0)) + interval
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(silent_s):
                    await self.request({"type": "ping"})
            except TimeoutError:
                if self.auto_reconnect and self._ws is not None:
                    self._ws.transport.abort()
            except Exception:
                pass

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- what arrived -------------------------------------------------------------------

    def frames(self, kind: str = "video") -> int:
        if self.receiver is None:
            return 0
        return sum(s.frames for s in self.receiver.of_kind(kind))

    async def close(self) -> None:
        self._closing = True
        reconnector = self._reconnector
        if reconnector is not None and reconnector is not asyncio.current_task():
            reconnector.cancel()
            with contextlib.suppress(BaseException):
                await reconnector
        await self._stop()

    async def _stop(self) -> None:
        # Connection and media only: ``events`` stay (a resume continues the same story).
        self._live = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        # Each step is bounded: aiortc's RTCPeerConnection.close() is known to hang now and
        # then (aiortc#283, aioice#12), and a terminal that cannot let go must not hold up
        # the caller (a test's teardown, the bench). What did not finish is logged.
        if self._ws is not None:
            await self._bounded(self._ws.close(), "WebSocket close")
        if self.publisher is not None:
            await self._bounded(self.publisher.close(), "publisher close")
        if self.receiver is not None:
            await self._bounded(self.receiver.close(), "receiver close")
        self.publisher = self.receiver = None

    async def _bounded(self, step: Any, what: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_STEP_S):
                await step
        except TimeoutError:
            logger.warning(
                "%s of terminal %s did not finish in %.0f s", what, self.code, CLOSE_STEP_S
            )
        except Exception as exc:  # closing what already failed
            logger.info("%s of terminal %s: %r", what, self.code, exc)

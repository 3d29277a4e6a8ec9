"""One WebSocket connection: framing checks, rate limit, heartbeat and a bounded outbox.

The session turns every bad frame into an error reply with a stable code and hands valid
messages, in order, to a SessionHandler (the RoomManager). Sending never blocks the room:
messages go into a bounded queue drained by a writer task; overflow closes this session
only (STYLE rule 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from signaling.errors import CloseCode, ErrorCode, SignalingError
from signaling.nul import nul_path
from signaling.protocol import CLIENT_TYPES, ClientMessage, Error, Heartbeat, encode, parse_client
from signaling.stats import SignalingStats

if TYPE_CHECKING:
    from signaling.peer import Peer
    from signaling.protocol import _Server
    from signaling.rooms import RoomConfig

log = logging.getLogger("tongke.signaling")

# Protocol-level errors that count toward closing an abusive connection.
ABUSE = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.RATE_LIMITED,
    }
)


class ConnectionClosed(Exception):
    """The transport is gone; raised by Connection.receive and Connection.send."""


class Connection(Protocol):
    """The transport boundary: a WebSocket (server/ws.py) or an in-memory pair in tests."""

    async def receive(self) -> str | bytes: ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


_finishing: set[asyncio.Future[None]] = set()

# A WebSocket silent this many heartbeat timeouts is closed even while the peer's media
# still flows (a hung page, a proxy that lost the socket): its messages no longer arrive.
STALLED_HEARTBEATS = 3


class SessionHandler(Protocol):
    async def handle(self, session: Session, message: ClientMessage) -> None: ...

    async def session_ended(self, session: Session) -> None: ...

    def media_silence_s(self, session: Session) -> float | None:
        """Seconds since the session's peer last sent media; None: no media to judge by."""
        ...


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


_CLOSE = object()


class Session:
    def __init__(
        self,
        conn: Connection,
        config: RoomConfig,
        stats: SignalingStats,
        outbox_size: int = 256,
    ) -> None:
        self.conn = conn
        self.config = config
        self.stats = stats
        self.peer: Peer | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.strikes = 0
        self._loop = asyncio.get_running_loop()
        self._bucket = TokenBucket(config.rate_per_s, config.rate_burst, self._loop.time())
        self._outbox: asyncio.Queue[Any] = asyncio.Queue(outbox_size)
        self._writer: asyncio.Task[None] | None = None
        self._pending: asyncio.Task[str | bytes] | None = None  # the frame being received

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    # Sending ---------------------------------------------------------------------------

    def send(self, message: _Server) -> None:
        """Queues a message; never blocks. A full queue closes this session."""
        if self.closing:
            return
        try:
            text = encode(message)
        except ValueError:
            # A message we built cannot be serialized (say, an echoed lone surrogate): drop it.
            log.warning("unserializable %s message dropped", message.type, exc_info=True)
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("outbox full; closing the slow session")
            self.stats.errors[ErrorCode.SLOW_CONSUMER] += 1
            self.abort(CloseCode.SLOW_CONSUMER, ErrorCode.SLOW_CONSUMER)

    def send_error(self, code: ErrorCode, message: str, id: str | None = None) -> None:
        self.stats.errors[code] += 1
        self.send(Error(id=id, code=code, message=message))

    def close(self, code: int, reason: str) -> None:
        """Closes after the queued messages are written. Idempotent."""
        if self.closing:
            return
        self.close_code, self.close_reason = code, reason
        try:
            self._outbox.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            self.abort(code, reason)

    def abort(self, code: int, reason: str) -> None:
        """Closes now, dropping what is queued (the writer may be stuck on a slow socket)."""
        if not self.closing:
            self.close_code, self.close_reason = code, reason
        if self._writer is not None:
            self._writer.cancel()

    # Running ---------------------------------------------------------------------------

    async def run(self, handler: SessionHandler) -> None:
        """Serves the connection until it closes, then tells the handler."""
        reader = asyncio.create_task(self._read_loop(handler), name="signaling-read")
        writer = self._writer = asyncio.create_task(self._write_loop(), name="signaling-write")
        beat = asyncio.create_task(self._heartbeat_loop(), name="signaling-heartbeat")
        try:
            await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, writer):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("signaling session task failed", exc_info=task.exception())
            if not writer.done():
                # The reader ended first: flush what is queued (an error, say), then close.
                self.close(CloseCode.NORMAL, "closed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await asyncio.shield(writer)
        finally:
            # A task of its own, shielded: when the server cancels this connection's task
            # (shutdown, or a harness whose cancellation repeats at every await), the room
            # still hears that the session ended.
            finish = asyncio.ensure_future(self._finish(handler, reader, writer, beat))
            _finishing.add(finish)  # held here: the loop keeps only weak references to tasks
            finish.add_done_callback(_finishing.discard)
            await asyncio.shield(finish)

    async def _finish(self, handler: SessionHandler, *tasks: asyncio.Task[None]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.close_code is None:
            self.close_code = CloseCode.NORMAL
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.conn.close(self.close_code, self.close_reason)
        await handler.session_ended(self)

    async def _write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is _CLOSE:
                return
            try:
                await self.conn.send(item)
            except ConnectionClosed:
                return
            except Exception:
                log.debug("send failed", exc_info=True)
                return

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            self.send(Heartbeat())

    async def _receive(self, handler: SessionHandler, pending: asyncio.Task[str | bytes]) -> None:
        """Waits for ``pending`` (the next frame); TimeoutError when the peer counts as gone.

        Gone means nothing arrived from it, neither messages nor media (RTP/RTCP), for
        silence_timeout_s. Media that flows keeps the peer even while its WebSocket is
        silent (pings lost in a blip, TCP retransmitting on a lossy line), up to
        STALLED_HEARTBEATS heartbeat timeouts; a peer without media to judge by (or with
        the early check off) is gone after heartbeat_timeout_s without a message."""
        loop = self._loop
        started = loop.time()
        timeout = self.config.heartbeat_timeout_s
        quick = max(self.config.silence_timeout_s, 0.0)
        stalled = max(timeout, quick) * STALLED_HEARTBEATS
        while True:
            waited = loop.time() - started
            limit = timeout
            first_check = min(quick, timeout)
            if quick and waited >= first_check:
                silent = handler.media_silence_s(self)
                if silent is not None:
                    if waited >= quick and silent >= quick:
                        raise TimeoutError
                    limit = stalled  # it has media: media silence decides, not the socket
            if waited >= limit:
                raise TimeoutError
            step = limit - waited
            if quick:
                step = min(step, max(first_check - waited, 0.5))  # then re-check twice a second
            # asyncio.wait, never a cancelled receive: a frame half-read is never lost.
            done, _ = await asyncio.wait((pending,), timeout=step)
            if done:
                return

    async def _read_loop(self, handler: SessionHandler) -> None:
        try:
            await self._read_frames(handler)
        finally:
            if self._pending is not None:
                self._pending.cancel()

    async def _read_frames(self, handler: SessionHandler) -> None:
        while not self.closing:
            try:
                if self._pending is None:
                    self._pending = asyncio.ensure_future(self.conn.receive())
                await self._receive(handler, self._pending)
                task, self._pending = self._pending, None
                data = task.result()
            except TimeoutError:
                self.stats.errors[ErrorCode.HEARTBEAT_TIMEOUT] += 1
                self.send(
                    Error(
                        code=ErrorCode.HEARTBEAT_TIMEOUT,
                        message="No message within the heartbeat timeout; send ping regularly.",
                    )
                )
                self.close(CloseCode.TIMEOUT, ErrorCode.HEARTBEAT_TIMEOUT)
                return
            except ConnectionClosed:
                return
            try:
                await self._on_frame(handler, data)
            except Exception:
                # Nothing a client sends may end its session by surprise.
                log.exception("signaling frame handling failed")
                self.send_error(ErrorCode.INTERNAL_ERROR, "The server failed; retry.")

    def _strike(self, code: ErrorCode, message: str, id: str | None = None) -> None:
        self.send_error(code, message, id)
        self.strikes += 1
        if self.strikes >= self.config.max_strikes:
            self.close(CloseCode.ABUSE, "too many bad messages")

    async def _on_frame(self, handler: SessionHandler, data: str | bytes) -> None:
        message = self._decode(data)
        if message is None:
            return
        self.stats.messages[message.type] += 1
        try:
            await handler.handle(self, message)
        except SignalingError as exc:
            self.send_error(exc.code, exc.message, message.id)
        except Exception:
            log.exception("signaling handler failed on %s", message.type)
            self.send_error(ErrorCode.INTERNAL_ERROR, "The server failed; retry.", message.id)

    def _decode(self, data: str | bytes) -> ClientMessage | None:
        """Parses and validates one frame, answering every failure with its error code and
        the message's `id` whenever the frame is JSON with one (every reply keeps its id)."""
        allowed = self._bucket.take(self._loop.time())
        if not allowed or self._size(data) > self.config.max_message_bytes:
            self.stats.messages["invalid"] += 1
            id = message_id(data)  # bounded work: uvicorn reads no frame past ws_max_frame_bytes
            if not allowed:
                self._strike(ErrorCode.RATE_LIMITED, "Too many messages; slow down.", id)
            else:
                limit = self.config.max_message_bytes
                self._strike(
                    ErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {limit} bytes.", id
                )
            return None
        return self._parse(data)

    @staticmethod
    def _size(data: str | bytes) -> int:
        if isinstance(data, str):
            try:
                return len(data.encode())
            except UnicodeEncodeError:
                return len(data)  # lone surrogates: _parse refuses them
        return len(data)

    def _parse(self, data: str | bytes) -> ClientMessage | None:
        if isinstance(data, str):
            try:
                data.encode()
            except UnicodeEncodeError:
                self.stats.messages["invalid"] += 1
                self._strike(ErrorCode.INVALID_JSON, "The message is not valid UTF-8 text.")
                return None
        else:
            self.stats.messages["invalid"] += 1
            self._strike(ErrorCode.INVALID_JSON, "Binary frames are not accepted; send JSON text.")
            return None
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            self.stats.messages["invalid"] += 1
            self._strike(ErrorCode.INVALID_JSON, "The message is not valid JSON.")
            return None
        id = raw.get("id") if isinstance(raw, dict) else None
        id = clean(id) if isinstance(id, str) and 0 < len(id) <= 64 else None
        if "\\u0000" in data:
            # No text of the protocol may hold NUL: PostgreSQL cannot store it (a note
            # with one once answered internal_error).
            field = nul_path(raw)
            if field is not None:
                self.stats.messages["invalid"] += 1
                message = f"{field}: text must not contain the NUL character (U+0000)."
                self._strike(ErrorCode.INVALID_MESSAGE, message, id)
                return None
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str):
            self.stats.messages["invalid"] += 1
            self._strike(
                ErrorCode.INVALID_MESSAGE, "A message is a JSON object with a string type.", id
            )
            return None
        if kind not in CLIENT_TYPES:
            self.stats.messages["invalid"] += 1
            self._strike(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {clean(kind[:64])!r}.", id)
            return None
        try:
            return parse_client(data)
        except ValidationError as exc:
            self.stats.messages["invalid"] += 1
            self._strike(ErrorCode.INVALID_MESSAGE, describe(exc), id)
            return None


def message_id(data: str | bytes) -> str | None:
    """The frame's `id` as replies echo it, when the frame is a JSON object with one."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return None
    id = raw.get("id") if isinstance(raw, dict) else None
    return clean(id) if isinstance(id, str) and 0 < len(id) <= 64 else None


def describe(exc: ValidationError) -> str:
    """The first validation problem with its field path, e.g. `tracks.0.source: ...`."""
    first = exc.errors(include_url=False)[0]
    path = ".".join(str(p) for p in first["loc"][1:]) or "message"
    return clean(f"{path}: {first['msg']}"[:300])


def clean(text: str) -> str:
    """Text safe to echo back: lone surrogates (valid in JSON escapes) become escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

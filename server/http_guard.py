"""What uvicorn leaves open at the socket: read deadlines, a connection cap, bad text frames.

uvicorn times out only idle keep-alive connections. A client that sends half a request and
then nothing (slowloris) holds its socket forever, and a thousand of them use up the
process's open files, so real classrooms can no longer connect (issue 17). Here:

- a request's line and headers must arrive within `http_header_timeout_s` of the connection
  (or of the request's first byte on a kept-alive connection), its body within
  `http_body_timeout_s` after the headers; past that the connection is closed (408 when
  nothing of the request was answered yet);
- at most `http_max_connections` connections are held (0: half the open-file limit, the
  other half stays for media sockets, the database and recordings); a new connection past
  the cap closes the oldest connection still sending its request, which is what a slowloris
  flood consists of, so a classroom's request that arrives whole is served;
- a WebSocket text frame that is not UTF-8 closes that connection with 1007, counted and
  logged once as a WARNING (uvicorn logs an ERROR with a traceback each time).

The protocols are uvicorn's own (httptools, websockets-sansio) with these hooks; the figures
are in docs/operations.md ("Half-open connections").
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger("tongke.http")

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 27\r\nconnection: close\r\n\r\nThe request came too slowly"
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 5\r\ncontent-length: 22\r\nconnection: close\r\n\r\nToo many connections now"
)


@dataclass
class GuardStats:
    """Counted for /metrics (server/metrics.py reads them at scrape time)."""

    read_timeouts: int = 0  # connections closed for sending a request too slowly
    evicted: int = 0  # half-sent requests closed to make room under the cap
    refused: int = 0  # new connections refused: the cap was full of live connections
    invalid_utf8: int = 0  # WebSockets closed with 1007 for a text frame not in UTF-8


# One process serves one app: its /metrics reads these (server/metrics.py).
STATS = GuardStats()


def auto_connection_cap(open_files: int | None = None) -> int:
    """Half the process's open-file limit (the rest: media sockets, database, recordings)."""
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if open_files == resource.RLIM_INFINITY:
            open_files = 65536
    return max(32, open_files // 2)


@dataclass
class ConnectionGuard:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    stats: GuardStats = field(default_factory=lambda: STATS)
    # Connections still sending a request, oldest first (dicts keep insertion order).
    reading: dict[Any, None] = field(default_factory=dict)

    def protocols(self) -> tuple[type[HttpToolsProtocol], type[WebSocketsSansIOProtocol]]:
        """uvicorn's `http` and `ws` protocol classes bound to this guard."""
        http = type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": self})
        ws = type("GuardedWebSocketProtocol", (GuardedWebSocketProtocol,), {"guard": self})
        return http, ws


def connection_guard(settings: Settings) -> ConnectionGuard:
    return ConnectionGuard(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        max_connections=settings.http_max_connections or auto_connection_cap(),
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._answered = False  # a response started on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading(self.guard.header_timeout_s)
        if len(self.connections) > self.guard.max_connections:
            self._make_room()

    def _make_room(self) -> None:
        guard = self.guard
        for victim in guard.reading:
            if victim is not self:
                guard.stats.evicted += 1
                victim._close_slow()
                return
        guard.stats.refused += 1
        self._done_reading()
        self.transport.write(_BUSY)
        self.transport.close()

    def _reading(self, within_s: float) -> None:
        """Arms (or re-arms) the deadline for the request being read."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(within_s, self._timed_out)
        self.guard.reading.setdefault(self, None)

    def _done_reading(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.reading.pop(self, None)

    def _timed_out(self) -> None:
        self._deadline = None
        self.guard.stats.read_timeouts += 1
        self._close_slow()

    def _close_slow(self) -> None:
        self._done_reading()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request
            self._reading(self.guard.header_timeout_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self in self.guard.reading:
            self._reading(self.guard.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._done_reading()

    def handle_websocket_upgrade(self) -> None:
        self._done_reading()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._done_reading()
        super().connection_lost(exc)


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    guard: ClassVar[ConnectionGuard]

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError:
                self.frames = []
                self.guard.stats.invalid_utf8 += 1
                prefix = f"{self.client[0]}:{self.client[1]} " if self.client else ""
                log.warning("%sa WebSocket text frame is not UTF-8; closed with 1007", prefix)
                self.conn.send_close(1007, "text frames must be UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

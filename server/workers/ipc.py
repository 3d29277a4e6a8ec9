"""The media RPC's bus between the service and its workers: a unix socket, no Redis.

MediaRpc (server/cluster/media_rpc.py) needs three things of a bus: ``node_id``,
``publish(channel, message)`` and ``subscribe(channel)``; its channels end in the node they
are for (``media-rpc:{node}``, ``media-reply:{node}``). Here each process keeps its
subscriptions in an in-process ``LocalBus``; a message for another process travels as one
JSON line over the socket. The service's process is the hub (:class:`IpcHub`): every worker
connects to it (:func:`connect_worker`) and it passes worker-to-worker lines on.

A message for a process that is not connected raises ``BusUnavailable`` at once, so a call
to a dead worker fails as ``media_unavailable`` without waiting for the RPC's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signaling.bus import LocalBus, LocalSubscription
from signaling.redis_bus import BusUnavailable

log = logging.getLogger("tongke.workers")

# A line is one RPC message: SDP of a relay with many tracks stays far below this.
LINE_LIMIT = 16 * 1024 * 1024


def _target(channel: str) -> str:
    return channel.rpartition(":")[2]


def _line(channel: str, message: dict[str, Any]) -> bytes:
    data = json.dumps({"ch": channel, "msg": message}, separators=(",", ":"), ensure_ascii=False)
    return data.encode() + b"\n"


class IpcBus:
    """One process's end: local subscriptions, remote publishes through ``_send``."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._local = LocalBus(node_id)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        target = _target(channel)
        if target == self.node_id:
            await self._local.publish(channel, message)
        else:
            await self._send(target, _line(channel, message))

    def subscribe(self, channel: str, maxsize: int = 256) -> LocalSubscription:
        return self._local.subscribe(channel, maxsize)

    async def _send(self, target: str, line: bytes) -> None:
        raise BusUnavailable(f"media worker {target} is not connected")

    async def _deliver(self, line: bytes) -> None:
        """A line that came over the socket: for this process, or (hub) passed on."""
        try:
            frame = json.loads(line)
            channel, message = str(frame["ch"]), frame["msg"]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("media worker channel: unreadable line dropped (%s)", exc)
            return
        if _target(channel) == self.node_id:
            await self._local.publish(channel, message)
            return
        try:
            await self._send(_target(channel), line if line.endswith(b"\n") else line + b"\n")
        except BusUnavailable as exc:
            log.info("media worker message on %s dropped: %s", channel, exc)


class IpcHub(IpcBus):
    """The service's end: a unix socket every worker connects to and says hello on."""

    def __init__(self, node_id: str, path: Path) -> None:
        super().__init__(node_id)
        self.path = path
        self._writers: dict[str, asyncio.StreamWriter] = {}
        self._server: asyncio.AbstractServer | None = None
        self.on_hello: Callable[[str, int], None] = lambda node, pid: None
        self.on_bye: Callable[[str], None] = lambda node: None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=LINE_LIMIT
        )

    def connected(self) -> set[str]:
        return set(self._writers)

    def drop(self, node: str) -> None:
        """Forgets a worker that died (its socket may close a moment later)."""
        writer = self._writers.pop(node, None)
        if writer is not None:
            writer.close()

    async def _send(self, target: str, line: bytes) -> None:
        writer = self._writers.get(target)
        if writer is None or writer.is_closing():
            raise BusUnavailable(f"media worker {target} is not connected")
        writer.write(line)
        try:
            await writer.drain()
        except ConnectionError as exc:
            raise BusUnavailable(f"media worker {target} went away: {exc}") from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = ""
        try:
            hello = json.loads(await reader.readline() or b"{}")
            node, pid = str(hello.get("hello", "")), int(hello.get("pid", 0))
            if not node or node == self.node_id or node in self._writers:
                log.warning("media worker connection without a usable hello: %r", hello)
                return
            self._writers[node] = writer
            self.on_hello(node, pid)
            while line := await reader.readline():
                await self._deliver(line)
        except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
            log.warning("media worker %s: connection broke (%s)", node or "?", exc)
        finally:
            if node and self._writers.get(node) is writer:
                del self._writers[node]
                self.on_bye(node)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers.values()):
            writer.close()
        self._writers.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class IpcWorkerBus(IpcBus):
    """A worker's end: one connection to the hub; ``closed`` is set when it ends."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, path: Path, pid: int) -> None:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=LINE_LIMIT)
        self._writer = writer
        writer.write(json.dumps({"hello": self.node_id, "pid": pid}).encode() + b"\n")
        await writer.drain()
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                await self._deliver(line)
        except (ValueError, ConnectionError) as exc:
            log.warning("media worker %s: link to the service broke (%s)", self.node_id, exc)
        finally:
            self.closed.set()

    async def _send(self, target: str, line: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise BusUnavailable("the service is not connected")
        writer.write(line)
        try:
            await writer.drain()
        except ConnectionError as exc:
            raise BusUnavailable(f"the service went away: {exc}") from None

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
        self.closed.set()

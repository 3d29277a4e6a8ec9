"""`tongke serve` under uvicorn, with draining on SIGTERM for a cluster node.

On one node SIGTERM shuts down at once, as before. On a cluster node the first SIGTERM
drains: the node takes no new lessons (placement skips it), its lessons go on until they end
or `drain_timeout_s` passes, then the usual graceful shutdown runs (the node leaves the
registry). A second SIGTERM, or SIGINT (Ctrl-C), stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn

from server.cluster.node import ClusterNode
from server.http_guard import ConnectionGuard
from server.listen import dual_stack_socket
from server.tls import ServingTls

log = logging.getLogger("tongke.cluster")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self.drain_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.drain_task is not None and not self.drain_task.done():
            self.drain_task.cancel()  # stopped at once by a second signal
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        node = getattr(getattr(self.config.app, "state", None), "cluster", None)
        first_term = sig == signal.SIGTERM and self.drain_task is None and not self.should_exit
        if node is None or not first_term or self._loop is None:
            super().handle_exit(sig, frame)
            return
        # In the signal handler: only schedule; the drain runs on the event loop.
        self._loop.call_soon_threadsafe(self._start_drain, node)

    def _start_drain(self, node: ClusterNode) -> None:
        if self.drain_task is None:
            self.drain_task = asyncio.get_running_loop().create_task(self._drain(node))

    async def _drain(self, node: ClusterNode) -> None:
        try:
            await node.drain()
            log.info(
                "SIGTERM: draining; waiting up to %.0fs for this node's lessons to end",
                self.drain_timeout_s,
            )
            if not await node.wait_drained(self.drain_timeout_s):
                log.warning("drain timeout: stopping with lessons still here")
        except Exception:
            log.exception("draining failed; stopping now")
        self.should_exit = True


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    ws_max_size: int,
    drain_timeout_s: float,
    tls: ServingTls | None = None,
    guard: ConnectionGuard | None = None,
) -> None:
    http, ws = guard.protocols() if guard is not None else ("auto", "auto")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws_max_size=ws_max_size,
        http=http,
        ws=ws,
        ssl_certfile=tls.cert_file if tls is not None else None,
        ssl_keyfile=tls.key_file if tls is not None else None,
    )
    sock = dual_stack_socket(host, port)
    DrainingServer(config, drain_timeout_s).run(sockets=[sock] if sock is not None else None)

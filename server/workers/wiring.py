"""The lifespan's workers step: start the media workers and let the rooms' port use them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from server.cluster.media_port import CascadeCollector, ClusterMediaPort
from server.cluster.media_rpc import ListenerTee, MediaRpc
from server.metrics import Metrics
from server.settings import Settings
from server.workers.ipc import IpcHub
from server.workers.metrics import WorkersCollector, WorkerStats
from server.workers.placement import worker_picker
from server.workers.pool import WorkerPool, socket_path

log = logging.getLogger("tongke.workers")

# The service process's node id on the workers' socket.
SERVICE_NODE = "main"


def worker_count(settings: Settings) -> int:
    """How many media workers this start runs; 0 means none (the media plane in one process).

    ``workers`` 0 is one per core; 1 is none. With Redis (many machines) or fault drills on,
    the media plane stays in the service's process: the cascade drives other nodes over
    Redis, and drills act on this process's media service only."""
    wanted = settings.workers or (os.cpu_count() or 1)
    if wanted <= 1 or settings.redis_url or settings.faults:
        return 0
    return wanted


def worker_config(settings: Settings) -> dict[str, object]:
    return {
        "ice_servers": list(settings.ice_servers),
        "media_addresses": list(settings.media_addresses),
        "log_level": settings.log_level,
    }


async def start_workers(
    stack: AsyncExitStack, settings: Settings, port: object, metrics: Metrics
) -> WorkerPool | None:
    """Starts the workers (raises WorkerStartError naming one that cannot start) and makes
    them serve the non-lead peers' media; stopped, in order, when ``stack`` closes."""
    count = worker_count(settings)
    if count == 0 or not isinstance(port, ClusterMediaPort):
        if settings.workers != 1 and (settings.redis_url or settings.faults):
            why = "Redis: one media process per node" if settings.redis_url else "fault drills"
            log.info("media workers: none with %s", why)
        return None
    folder = Path(tempfile.mkdtemp(prefix="tongke-workers-"))  # 0700: only this user
    stack.callback(shutil.rmtree, folder, True)
    hub = IpcHub(SERVICE_NODE, socket_path(folder))
    await hub.start()
    stack.push_async_callback(hub.close)
    rpc = MediaRpc(hub, port.service)
    await rpc.start()
    stack.push_async_callback(rpc.close)
    config = {**worker_config(settings), "socket": str(hub.path)}
    pool = WorkerPool(count, hub, config, on_gone=port.nodes_gone)
    stack.push_async_callback(pool.close)  # after the relays are closed (below)
    await pool.start()
    # Relays are closed (and the workers told) while the workers still run.
    stack.push_async_callback(port.close_links)
    port.service.set_listener(ListenerTee(port.local, rpc))
    port.attach(rpc, worker_picker(pool.live, port.peers_by_node, settings.worker_lesson_peers))
    stats = WorkerStats(pool, rpc)
    poller = asyncio.get_running_loop().create_task(stats.run(), name="worker-stats")

    async def stop_polling() -> None:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller

    stack.push_async_callback(stop_polling)
    for collector in (WorkersCollector(stats), CascadeCollector(port)):
        metrics.registry.register(collector)
        stack.callback(metrics.registry.unregister, collector)
    log.info("media workers: %d (%s)", count, ", ".join(pool.live()))
    return pool

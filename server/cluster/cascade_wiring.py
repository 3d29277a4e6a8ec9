"""The lifespan's cascade step: the room's media port may use other nodes' media services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from media.sfu import MediaService
from server.cluster.media_port import CascadeCollector, ClusterMediaPort, Picker
from server.cluster.media_rpc import ListenerTee, MediaRpc
from server.cluster.node import ClusterNode
from server.metrics import Metrics
from server.settings import Settings
from signaling.bus import Bus
from signaling.grants import Role
from signaling.media_port import MediaPort, PeerInfo
from signaling.redis_bus import TRANSIENT, RedisBus
from signaling.sfu_port import SfuMediaPort

log = logging.getLogger("tongke.cluster.media")


def cascade_port(settings: Settings, local: SfuMediaPort) -> MediaPort:
    """The port the rooms use: the local SFU in one process, ClusterMediaPort with Redis or
    with media workers (server/workers/)."""
    from server.workers.wiring import worker_count

    return ClusterMediaPort(local) if settings.redis_url or worker_count(settings) else local


def picker(settings: Settings, node: ClusterNode, service: MediaService) -> Picker:
    """Which node serves a new peer's media: the classroom's edge node if one is configured
    (and live), else another node once this one serves ``cascade_after_peers``; the lead's
    media always stays on the home (everyone consumes it: it is relayed, not moved)."""

    async def pick(peer: PeerInfo) -> str | None:
        if peer.role is Role.LEAD:
            return None
        target = settings.cascade_edges.get(peer.classroom_id or "")
        if target is None and (
            not settings.cascade_after_peers
            or service.stats()["peers"] < settings.cascade_after_peers
        ):
            return None
        try:
            nodes = [n for n in await node.nodes() if n.id != node.node_id and not n.draining]
        except TRANSIENT as exc:
            log.warning("no node list for %s's media (%s): served here", peer.peer_id, exc)
            return None
        if target is not None:
            return target if any(n.id == target for n in nodes) else None
        room = [n for n in nodes if not n.full]
        return min(room, key=lambda n: (n.score(), n.id)).id if room else None

    return pick


async def watch_nodes(
    in_use: Callable[[], set[str]],
    on_gone: Callable[[set[str]], Awaitable[object]],
    node: ClusterNode,
    interval_s: float,
) -> None:
    """Calls ``on_gone`` with the nodes this node works with (``in_use()``) that left the
    registry. A node counts as gone when two registry reads in a row, ``interval_s`` apart,
    lack it: one read right after a Redis restart may miss nodes that have not rewritten
    their entry yet."""
    missing_before: set[str] = set()
    while True:
        await asyncio.sleep(interval_s)
        others = in_use() - {node.node_id}
        if not others:
            missing_before = set()
            continue
        try:
            live = {n.id for n in await node.nodes()}
        except TRANSIENT as exc:
            log.info("registry unreadable (%s): nodes checked later", exc)
            continue
        missing = others - live
        gone = missing & missing_before
        missing_before = missing
        if gone:
            try:
                await on_gone(gone)
            except Exception:  # the watch goes on; the next round tries again
                log.exception("closing what went with %s failed", sorted(gone))


def homes_of(rpc: MediaRpc) -> set[str]:
    """The home nodes that drive media here (their peers, their relays)."""
    return (
        {h for h, _ in rpc.served.values()} | set(rpc.drivers.values()) | set(rpc.accepted.values())
    )


async def join_cascade(
    stack: AsyncExitStack,
    settings: Settings,
    bus: Bus,
    port: MediaPort,
    node: ClusterNode,
    metrics: Metrics,
) -> MediaRpc | None:
    """Serves other nodes' media calls here and lets this node's rooms use other nodes."""
    if not isinstance(bus, RedisBus) or not isinstance(port, ClusterMediaPort):
        return None
    rpc = MediaRpc(bus, port.service)
    await rpc.start()
    stack.push_async_callback(rpc.close)
    # Relays are closed (and the edge nodes told) while the RPC still runs.
    stack.push_async_callback(port.close_links)
    port.service.set_listener(ListenerTee(port.local, rpc))
    port.attach(rpc, picker(settings, node, port.service))
    # What a dead home drove here is closed; a dead edge's peers are asked to join again.
    loop = asyncio.get_running_loop()
    watchers = [
        loop.create_task(
            watch_nodes(
                lambda: homes_of(rpc),
                lambda gone: rpc.forget_nodes(homes_of(rpc) - gone),
                node,
                settings.node_ttl_s,
            ),
            name="cascade-home-watch",
        ),
        loop.create_task(
            watch_nodes(port.edge_nodes, port.nodes_gone, node, settings.node_ttl_s),
            name="cascade-edge-watch",
        ),
    ]

    async def stop_watching() -> None:
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    stack.push_async_callback(stop_watching)
    collector = CascadeCollector(port)
    metrics.registry.register(collector)
    stack.callback(metrics.registry.unregister, collector)
    return rpc

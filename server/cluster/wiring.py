"""The lifespan's cluster step: with the Redis bus, this node joins the cluster."""

from __future__ import annotations

import socket
import uuid
from contextlib import AsyncExitStack

from media.sfu import MediaService
from server.cluster.metrics import ClusterCollector
from server.cluster.node import ClusterNode
from server.cluster.registry import Load
from server.metrics import Metrics
from server.recording import RecordingController
from server.settings import Settings
from signaling.bus import Bus
from signaling.redis_bus import RedisBus
from signaling.rooms import RoomManager


def node_id_for(settings: Settings) -> str:
    """The configured node id, or a fresh one: a restarted node is a new node."""
    return settings.node_id or f"{socket.gethostname()}-{settings.port}-{uuid.uuid4().hex[:6]}"


async def join_cluster(
    stack: AsyncExitStack,
    settings: Settings,
    bus: Bus,
    rooms: RoomManager,
    media: MediaService,
    metrics: Metrics,
    recording: RecordingController | None = None,
) -> ClusterNode | None:
    """Registers this node (its entry leaves at shutdown) and makes placement the bus's lesson
    directory. Nothing happens on one node (the in-process bus)."""
    if not isinstance(bus, RedisBus):
        return None

    async def lost(lesson_id: str) -> None:
        # This node missed heartbeats and the lesson was placed on another node meanwhile:
        # its peers here are sent to the new home (close 4301), and this node's part of the
        # recording is closed and catalogued (the new home's room records on into a new session).
        rooms.evict(lesson_id)
        if recording is not None and recording.recording(lesson_id):
            await recording.stop(lesson_id)

    def load() -> Load:
        stats = media.stats()
        return Load(
            # Peers whose signaling is here, or whose media is (the cascade serves other
            # nodes' classrooms here): whichever is more.
            peers=max(rooms.peer_count, stats.get("peers", 0)),
            streams=stats.get("consumers", 0) + stats.get("relay_streams_out", 0),
            lessons=len(rooms.rooms),
        )

    node = ClusterNode(
        bus.redis,
        prefix=settings.redis_prefix,
        node_id=bus.node_id,
        url=settings.effective_public_url,
        max_peers=settings.max_peers,
        ttl_s=settings.node_ttl_s,
        # A lesson placed here that nobody joins is released once its join tokens expired.
        idle_release_s=float(settings.join_token_ttl_s),
        load=load,
        local_lessons=lambda: set(rooms.rooms),
        on_lost=lost,
    )
    bus.directory = node.placement
    await node.start()
    stack.push_async_callback(node.close)
    collector = ClusterCollector(node, bus)
    metrics.registry.register(collector)
    stack.callback(metrics.registry.unregister, collector)
    return node

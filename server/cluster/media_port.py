"""The room's MediaPort on a cluster node: some peers' media served by other nodes (cascade).

The room (signaling) stays on the lesson's home node A and keeps calling one MediaPort. For a
peer whose *media node* is A, :class:`ClusterMediaPort` delegates to the local
``SfuMediaPort``. For a peer given another media node B (the home is full, or its classroom
is mapped to an edge node), it drives B's ``MediaService`` over the media RPC
(server/cluster/media_rpc.py) and keeps one link per (lesson, B):

- relay A->B ("out") carries every A producer that B's peers consume, once, however many
  peers B serves (``relay_offer`` here, ``relay_accept`` on B, ``relay_answer`` here);
- relay B->A ("in") carries what B's peers publish; on A those become producers like a
  local publisher's (SfuMediaPort announces them to the room with the peer's role and
  classroom), so A's peers, the recorder and other edge nodes consume them as usual.

B's subscription offers come back here and go to the peer over A's signaling; the peer's
answer goes back to B. The peer's ICE/DTLS runs with B (its candidates are in B's SDP).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from media.relay import RelayOffer
from media.sfu import MediaError as SfuError
from media.sfu import MediaService
from server.cluster.media_rpc import MediaRpc
from signaling.errors import ErrorCode
from signaling.grants import Source
from signaling.media_port import (
    MediaError,
    MediaListener,
    OfferedConsumer,
    PeerInfo,
    QualityReport,
    SubscriptionOffer,
    TrackOffer,
)
from signaling.policy import Layer, ProducerRef
from signaling.sfu_port import SfuMediaPort, _refused

log = logging.getLogger("tongke.cluster.media")

# Seconds a closing call waits for a node that may be gone (it cleans up by itself then:
# MediaRpc.forget_nodes on the serving node).
QUICK_S = 3.0

# Which node serves a peer's media: None for this node.
Picker = Callable[[PeerInfo], Awaitable[str | None]]


def _labels(peer: PeerInfo) -> dict[str, str]:
    """Who the peer is, for the serving node's metrics."""
    return {"role": peer.role.value, "classroom": peer.classroom_id or ""}


@dataclass(slots=True)
class _Remote:
    info: PeerInfo
    node: str
    wanted: dict[str, str] = field(default_factory=dict)  # home producer id -> layer
    needs: frozenset[str] = frozenset()  # home producer ids relayed out for this peer
    published: tuple[str, ...] = ()  # producer ids on its media node


@dataclass(slots=True)
class _Link:
    """The relays between this home node and one edge node, for one lesson."""

    lesson_id: str
    node: str
    out_id: str
    in_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    out_open: bool = False
    in_open: bool = False


class ClusterMediaPort:
    def __init__(self, local: SfuMediaPort) -> None:
        self.local = local
        self.service: MediaService = local.service
        self.rpc: MediaRpc | None = None
        self._pick: Picker | None = None
        self._listener: MediaListener | None = None
        self._local_peers: set[str] = set()
        self._remotes: dict[str, _Remote] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generations = itertools.count(1)

    def attach(self, rpc: MediaRpc, pick: Picker) -> None:
        """Cluster wiring: from now on new peers may be served by other nodes."""
        self.rpc = rpc
        self._pick = pick
        rpc.on_event = self._event
        rpc.on_local_relay = self._relay_needs_resync
        rpc.on_local_relay_failed = self._relay_failed

    # MediaPort -----------------------------------------------------------------------------

    def set_listener(self, listener: MediaListener) -> None:
        self._listener = listener
        self.local.set_listener(listener)

    async def publish(self, peer: PeerInfo, sdp: str, tracks: Sequence[TrackOffer]) -> str:
        remote = await self._remote(peer)
        if remote is None:
            return await self.local.publish(peer, sdp, tracks)
        self.local.remember(peer)  # its producers relayed here are announced with its role
        result = await self._call(
            remote.node, "publish", lesson_id=peer.lesson_id, peer_id=peer.peer_id, sdp=sdp,
            tracks=[{"mid": t.mid, "source": t.source.value, "layer": t.layer.value}
                    for t in tracks],
            **_labels(peer),
        )  # fmt: skip
        # Its producers are relayed here (and so offered to receivers) only once the serving
        # node says they can flow (producer_ready: its transport connected, as
        # media/announce.py gates them in one process): a publisher whose DTLS fails after
        # its answer is never offered. The relay does not hold up the publisher's answer.
        return str(result["sdp"])

    async def set_subscriptions(
        self, peer: PeerInfo, refs: frozenset[ProducerRef]
    ) -> SubscriptionOffer | None:
        remote = await self._remote(peer)
        if remote is None:
            return await self.local.set_subscriptions(peer, refs)
        link = self._link(peer.lesson_id, remote.node)
        wanted: dict[str, str] = {}  # home producer id -> preferred layer
        for ref in refs:
            pid = self.local.producer_for(ref)
            if pid is not None:
                wanted[pid] = ref.layer.value
        remote.wanted = wanted
        return await self._subscribe(link, remote)

    async def _subscribe(self, link: _Link, remote: _Remote) -> SubscriptionOffer | None:
        """Makes the edge node serve ``remote.wanted``, relaying what it lacks first."""
        # Producers published on the edge node itself are consumed there directly.
        came_in = {
            info.id: origin for origin, info in self.service.relay_producers(link.in_id).items()
        }
        wanted = remote.wanted
        needs = frozenset(
            sibling
            for pid in wanted
            if pid not in came_in
            for sibling in self._pair(link.lesson_id, pid)
        )
        remote.needs = remote.needs | needs  # grow first: the relay carries them before B asks
        await self._sync_out(link)
        items: list[dict[str, str]] = []
        for pid, layer in wanted.items():
            if pid in came_in:
                items.append({"id": came_in[pid], "layer": layer})
            else:
                items.append({"relay": link.out_id, "origin": pid, "layer": layer})
        peer = remote.info
        offer = await self._call(
            remote.node,
            "subscribe",
            lesson_id=peer.lesson_id,
            peer_id=peer.peer_id,
            items=items,
            **_labels(peer),
        )
        if remote.needs != needs:  # shrink after B stopped consuming what is no longer wanted
            remote.needs = needs
            self._spawn(self._sync_out(link))
        return self._offer(offer)

    async def subscribe_answer(self, peer: PeerInfo, sdp: str) -> SubscriptionOffer | None:
        remote = self._remotes.get(peer.peer_id)
        if remote is None:
            return await self.local.subscribe_answer(peer, sdp)
        offer = await self._call(
            remote.node, "answer", lesson_id=peer.lesson_id, peer_id=peer.peer_id, sdp=sdp
        )
        return self._offer(offer)

    def last_heard_ms(self, peer_id: str) -> int | None:
        # A peer served elsewhere is judged by its heartbeats alone.
        return None if peer_id in self._remotes else self.local.last_heard_ms(peer_id)

    def clear_faults(self, peer_id: str) -> None:
        # RoomManager clears a gone peer's drill faults through the port (the admin API
        # sets them on this node's MediaService); without this a cluster node kept them.
        self.local.clear_faults(peer_id)

    def move_faults(self, old_peer_id: str, new_peer_id: str) -> None:
        self.local.move_faults(old_peer_id, new_peer_id)

    async def close_peer(self, peer: PeerInfo) -> None:
        self._local_peers.discard(peer.peer_id)
        remote = self._remotes.pop(peer.peer_id, None)
        if remote is None:
            await self.local.close_peer(peer)
            return
        await self.local.close_peer(peer)  # forgets the remembered PeerInfo
        link = self._link(peer.lesson_id, remote.node)
        await self._quietly(remote.node, "close_peer", peer_id=peer.peer_id)
        if not any(r.node == link.node and r.info.lesson_id == link.lesson_id
                   for r in self._remotes.values()):  # fmt: skip
            await self._close_link(link)
            return
        if remote.published:
            await self._sync_in(link)
        await self._sync_out(link)

    async def close_links(self) -> None:
        """Closes every relay (and tells the edge nodes); peers served elsewhere are let go."""
        for link in list(self._links.values()):
            await self._close_link(link)

    async def close(self) -> None:
        await self.close_links()
        for task in tuple(self._tasks):
            task.cancel()
        await self.local.close()

    # Where a peer's media lives ------------------------------------------------------------

    async def _remote(self, peer: PeerInfo) -> _Remote | None:
        remote = self._remotes.get(peer.peer_id)
        if remote is not None or peer.peer_id in self._local_peers:
            return remote
        node = None if self._pick is None else await self._pick(peer)
        if peer.peer_id in self._remotes or peer.peer_id in self._local_peers:
            return self._remotes.get(peer.peer_id)  # decided while we asked
        if node is None or self.rpc is None or node == self.rpc.node_id:
            self._local_peers.add(peer.peer_id)
            return None
        log.info("peer %s of lesson %s gets its media from node %s",
                 peer.peer_id, peer.lesson_id, node)  # fmt: skip
        remote = self._remotes[peer.peer_id] = _Remote(peer, node)
        return remote

    def edge_nodes(self) -> set[str]:
        """The other nodes serving media for this node's lessons now."""
        return {r.node for r in self._remotes.values()} | {n for _, n in self._links}

    async def nodes_gone(self, gone: set[str]) -> None:
        """Edge nodes that died: drop their relays here without asking them, and tell the
        room each of their peers lost its media (it is asked to join again)."""
        for link in [k for k in self._links.values() if k.node in gone]:
            self._links.pop((link.lesson_id, link.node), None)
            async with link.lock:
                link.out_open = link.in_open = False
                # The relayed-in producers close with their relay: the room hears the peers'
                # tracks are gone and the other subscribers are offered without them.
                await self.service.close_relay(link.out_id)
                await self.service.close_relay(link.in_id)
        for remote in [r for r in self._remotes.values() if r.node in gone]:
            self._remotes.pop(remote.info.peer_id, None)
            log.warning("node %s serving %s's media is gone", remote.node, remote.info.peer_id)
            if self._listener is not None:
                self._listener.media_lost(remote.info.lesson_id, remote.info.peer_id)

    def peers_by_node(self) -> dict[str, Counter[str]]:
        """How many peers each other node serves, by lesson (media worker placement)."""
        counts: dict[str, Counter[str]] = {}
        for remote in self._remotes.values():
            counts.setdefault(remote.node, Counter())[remote.info.lesson_id] += 1
        return counts

    def media_node(self, peer_id: str) -> str | None:
        """The node serving the peer's media, None when it is this one (tests, admin)."""
        remote = self._remotes.get(peer_id)
        return None if remote is None else remote.node

    # Relays --------------------------------------------------------------------------------

    def _link(self, lesson_id: str, node: str) -> _Link:
        link = self._links.get((lesson_id, node))
        if link is None:
            me = self.rpc.node_id if self.rpc is not None else "home"
            # A generation per link: a link closing while the next one opens never closes
            # the next one's relays on the edge node by their id.
            n = next(self._generations)
            link = self._links[(lesson_id, node)] = _Link(
                lesson_id, node, f"{lesson_id}@{me}>{node}#{n}", f"{lesson_id}@{node}>{me}#{n}"
            )
        return link

    def relay_ids(self, lesson_id: str, node: str) -> tuple[str, str] | None:
        """The (out, in) relay ids between this home and ``node`` for the lesson (tests)."""
        link = self._links.get((lesson_id, node))
        return None if link is None else (link.out_id, link.in_id)

    def _pair(self, lesson_id: str, pid: str) -> list[str]:
        """Both layers of a dual stream travel: each edge receiver picks its own layer."""
        infos = {i.id: i for i in self.service.producers(lesson_id)}
        info = infos.get(pid)
        if info is None:
            return [pid]
        return [i.id for i in infos.values()
                if i.peer_id == info.peer_id and i.source == info.source]  # fmt: skip

    async def _sync_out(self, link: _Link) -> None:
        """Makes relay A->B carry exactly what B's peers consume (home ids still alive)."""
        alive = {i.id for i in self.service.producers(link.lesson_id)}
        async with link.lock:
            wanted = sorted(
                {pid for r in self._remotes.values() if r.node == link.node
                 and r.info.lesson_id == link.lesson_id for pid in r.needs} & alive
            )  # fmt: skip
            if not wanted and not link.out_open:
                return
            try:
                offer = await self._relay(
                    self.service.relay_offer(link.out_id, link.lesson_id, wanted)
                )
                link.out_open = True
                await self._offer_out(link, offer)
            except MediaError as exc:
                log.warning("relay %s failed: %s; closing it", link.out_id, exc.message)
                await self._close_out(link)
                raise

    async def _resync_out(self, link: _Link) -> None:
        async with link.lock:
            if not link.out_open:
                return
            try:
                offer = await self._relay(self.service.relay_resync(link.out_id))
                await self._offer_out(link, offer)
            except MediaError as exc:
                log.warning("relay %s resync failed: %s; closing it", link.out_id, exc.message)
                await self._close_out(link)

    async def _offer_out(self, link: _Link, offer: RelayOffer | None) -> None:
        """Sends relay A->B's offer to B and applies B's answers until no follow-up offer is
        left. Under ``link.lock``."""
        while offer is not None:
            reply = await self._call(
                link.node, "relay_accept", relay_id=link.out_id,
                lesson_id=link.lesson_id, offer=offer.to_dict(),
            )  # fmt: skip
            offer = await self._relay(self.service.relay_answer(link.out_id, reply["sdp"]))

    async def _sync_in(self, link: _Link, resync: bool = False) -> None:
        """Makes relay B->A carry what B's peers publish (driven from here, over the RPC)."""
        async with link.lock:
            published = [pid for r in self._remotes.values() if r.node == link.node
                         and r.info.lesson_id == link.lesson_id for pid in r.published]  # fmt: skip
            if not published and not link.in_open:
                return
            try:
                if resync:
                    raw = await self._call(link.node, "relay_resync", relay_id=link.in_id)
                else:
                    raw = await self._call(
                        link.node, "relay_offer", relay_id=link.in_id,
                        lesson_id=link.lesson_id, producer_ids=published,
                    )  # fmt: skip
                link.in_open = True
                while raw is not None:
                    offer = RelayOffer.from_dict(raw)
                    answer = await self._relay(
                        self.service.relay_accept(
                            link.in_id, link.lesson_id, offer.sdp, offer.tracks
                        )
                    )
                    raw = await self._call(
                        link.node, "relay_answer", relay_id=link.in_id, sdp=answer
                    )
            except MediaError as exc:
                log.warning("relay %s failed: %s; closing it", link.in_id, exc.message)
                await self._close_in(link)

    async def _close_out(self, link: _Link) -> None:
        link.out_open = False
        await self.service.close_relay(link.out_id)
        await self._quietly(link.node, "close_relay", relay_id=link.out_id)

    async def _close_in(self, link: _Link) -> None:
        link.in_open = False
        await self._quietly(link.node, "close_relay", relay_id=link.in_id)
        await self.service.close_relay(link.in_id)

    async def _close_link(self, link: _Link) -> None:
        self._links.pop((link.lesson_id, link.node), None)
        async with link.lock:
            if link.out_open:
                await self._close_out(link)
            if link.in_open:
                await self._close_in(link)

    def _relay_needs_resync(self, relay_id: str) -> None:
        """A producer relayed out closed here: drop its track from the relay."""
        for link in self._links.values():
            if link.out_id == relay_id:
                self._spawn(self._resync_out(link))

    def _relay_failed(self, relay_id: str) -> None:
        """The other end of a relay closed or vanished: offer it afresh (if still needed)."""
        for link in self._links.values():
            if relay_id in (link.out_id, link.in_id):
                self._spawn(self._reopen(link, out=relay_id == link.out_id))

    async def _reopen(self, link: _Link, *, out: bool) -> None:
        async with link.lock:
            if out and link.out_open:
                log.info("relay %s failed; offering it again", link.out_id)
                await self._close_out(link)
            elif not out and link.in_open:
                log.info("relay %s failed; offering it again", link.in_id)
                await self._close_in(link)
            else:
                return
        if self._links.get((link.lesson_id, link.node)) is not link:
            return
        if not out:
            await self._sync_in(link)
            return
        # B's relayed producers went with the relay, and its peers' consumers with them:
        # the room's wishes did not change, so subscribe them again here.
        for remote in list(self._remotes.values()):
            if remote.node != link.node or remote.info.lesson_id != link.lesson_id:
                continue
            try:
                offer = await self._subscribe(link, remote)
            except MediaError as exc:
                log.warning("resubscribing %s failed: %s", remote.info.peer_id, exc.message)
                continue
            if offer is not None and self._listener is not None:
                self._listener.subscription_offer(link.lesson_id, remote.info.peer_id, offer)

    def _event(self, node: str, name: str, message: dict[str, Any]) -> None:
        if name == "quality":
            remote = self._remotes.get(str(message.get("peer_id")))
            report = message.get("report")
            if remote is not None and remote.node == node and self._listener is not None:
                if isinstance(report, dict):
                    info = remote.info
                    self._listener.quality_changed(
                        info.lesson_id, info.peer_id, QualityReport(**report)
                    )
        elif name == "publish_failed":
            # A peer served there: its send transport failed (docs/protocol.md transport_failed).
            remote = self._remotes.get(str(message.get("peer_id")))
            failed = getattr(self._listener, "publish_failed", None)
            if remote is not None and remote.node == node and failed is not None:
                failed(remote.info.lesson_id, remote.info.peer_id, str(message.get("reason")))
        elif name == "producer_ready":
            remote = self._remotes.get(str(message.get("peer_id")))
            if remote is not None and remote.node == node:
                pid = str(message.get("producer_id"))
                remote.published = tuple(dict.fromkeys((*remote.published, pid)))
                self._spawn(self._sync_in(self._link(remote.info.lesson_id, remote.node)))
        elif name == "subscribe_refused":
            # A peer served there refused a codec in its answer (unsupported_codec).
            remote = self._remotes.get(str(message.get("peer_id")))
            refused = getattr(self._listener, "subscribe_refused", None)
            if remote is not None and remote.node == node and refused is not None:
                refused(remote.info.lesson_id, remote.info.peer_id, str(message.get("reason")))
        elif name == "relay_renegotiation_needed":
            for link in self._links.values():
                if link.in_id == message.get("relay_id") and link.node == node:
                    self._spawn(self._sync_in(link, resync=True))
        elif name == "subscription_offer":
            remote = self._remotes.get(str(message.get("peer_id")))
            if remote is None or remote.node != node or self._listener is None:
                return
            offer = self._offer(message.get("offer"))
            if offer is not None:
                self._listener.subscription_offer(remote.info.lesson_id, remote.info.peer_id, offer)

    # Helpers -------------------------------------------------------------------------------

    async def _call(self, node: str, op: str, **args: Any) -> Any:
        if self.rpc is None:
            raise MediaError(ErrorCode.MEDIA_UNAVAILABLE, "No cluster: no other media node.")
        try:
            return await self.rpc.call(node, op, **args)
        except SfuError as exc:
            if exc.code == "media_unavailable":
                raise MediaError(ErrorCode.MEDIA_UNAVAILABLE, exc.message) from None
            raise _refused(exc) from None

    async def _quietly(self, node: str, op: str, **args: Any) -> None:
        """Closing calls: a node that is gone must not hold up a leave or a shutdown."""
        try:
            await self._call(node, op, within_s=QUICK_S, **args)
        except MediaError as exc:
            log.info("%s on %s: %s", op, node, exc.message)

    @staticmethod
    async def _relay(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except SfuError as exc:
            raise _refused(exc) from None

    def _offer(self, raw: Any) -> SubscriptionOffer | None:
        if raw is None:
            return None
        consumers = []
        for c in raw["consumers"]:
            # Its publisher went through publish() here, so the local port knows it.
            ref = ProducerRef(
                c["peer_id"],
                Source(c["source"]),
                Layer(c["layer"]),
                self.local.classroom_of(c["peer_id"]),
            )
            consumers.append(OfferedConsumer(c["consumer_id"], c["mid"], ref))
        return SubscriptionOffer(raw["sdp"], tuple(consumers))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("cascade task failed: %r", task.exception())

    def stats(self) -> dict[str, int]:
        return {"remote_peers": len(self._remotes), "links": len(self._links)}


class CascadeCollector(Collector):
    """Relay figures on /metrics: a home node sends one stream per relayed producer."""

    def __init__(self, port: ClusterMediaPort) -> None:
        self.port = port

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.port.service.stats()
        for key, text in (  # the media plane's own figures: server/media_metrics.py
            ("relays_out", "Cascade relays from this node (home end)"),
            ("relays_in", "Cascade relays into this node (edge end)"),
            ("relay_streams_out", "Streams this node sends over cascade relays"),
        ):
            yield GaugeMetricFamily(f"tongke_media_{key}", text, value=stats.get(key, 0))
        yield GaugeMetricFamily(
            "tongke_cascade_remote_peers",
            "Peers of lessons homed here whose media another node serves",
            value=self.port.stats()["remote_peers"],
        )

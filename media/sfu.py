"""MediaService: the media plane's front door (one Router per lesson, two transports per peer).

The signaling layer calls this with plain strings and dataclasses; nothing here knows about
accounts, WebSockets, roles or the subscription policy. Flow for one peer:

- ``publish(lesson, peer, offer_sdp, tracks)`` -> :class:`PublishResult` (answer SDP + one
  producer per m-line) on the peer's send transport; a later re-offer adds tracks.
  ``unpublish(peer, producer_id)`` closes one.
- ``subscribe(lesson, peer, producer_ids, layers=None)`` sets the COMPLETE wanted set of
  producers for the peer; returns a :class:`SubscribeResult` (an offer SDP for the receive
  transport + every consumer the peer will have) when m-lines change, else ``None``.
- ``answer(peer, answer_sdp)`` applies the peer's answer; consumers start once the transport
  is connected. If the wanted set changed meanwhile, it returns the follow-up offer.
- ``resync(peer)`` after the ``renegotiation_needed`` event (a consumed producer went away).
- ``set_layer``, ``set_consumer_paused``, ``set_producer_paused``, ``set_faults`` (tests).
- ``close_peer(peer)``, ``close_lesson(lesson)``, ``close()``; ``stats()`` for metrics.
- Cascade relay between nodes (media/cascade.py): ``relay_offer``/``relay_answer``/
  ``relay_resync`` on the lesson's home node, ``relay_accept`` on the edge node,
  ``close_relay`` on either.

Events go to a :class:`MediaListener`: ``producer_added``, ``producer_removed``,
``renegotiation_needed``, ``active_speaker``, ``peer_quality``, ``transport_state``,
``relay_renegotiation_needed`` (optional: listeners without it never hear it).
Failures raise :class:`MediaError` with a stable ``code``; nothing changes on failure.

Producers of the same peer and source with layers ``main`` and ``low`` form a dual stream: a
subscription to either id yields ONE layered consumer fed by both (``set_layer`` steers it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aiortc import RTCIceServer

from media import aiortc_hooks as hooks
from media.announce import AnnounceGate
from media.cascade import Cascade, RelayOffer, RelayTrack
from media.codecs import RtpParameters
from media.faults import NO_FAULTS, AnyFaults, FaultInjector
from media.quality import PeerQuality
from media.router import Router, RouterError
from media.sfu_peer import PeerSession
from media.sfu_types import (
    LAYERS,
    ConsumerInfo,
    LocalTrack,
    MediaError,
    MediaListener,
    NullMediaListener,
    ProducerInfo,
    PublishResult,
    SubscribeResult,
    TrackSpec,
    ice_servers_from,
)
from media.transport import (
    TRANSPORT_COUNTERS,
    TransportError,
    TransportState,
    WebRtcTransport,
    add_counts,
)

__all__ = [
    "ConsumerInfo",
    "MediaError",
    "MediaListener",
    "MediaService",
    "NullMediaListener",
    "ProducerInfo",
    "PublishResult",
    "SubscribeResult",
    "TrackSpec",
]

logger = logging.getLogger(__name__)

QUALITY_INTERVAL_S = 2.0


class MediaService:
    """One per process. ``ice_servers`` are explicit (never aiortc's default public STUN);
    ``host_addresses`` restricts ICE host candidates (``["127.0.0.1"]`` for loopback tests)."""

    def __init__(
        self,
        *,
        ice_servers: Sequence[str | Mapping[str, Any] | RTCIceServer] = (),
        host_addresses: Sequence[str] | None = None,
        listener: MediaListener | None = None,
        quality_interval_s: float = QUALITY_INTERVAL_S,
    ) -> None:
        hooks.check_version()
        self._quality_interval_s = quality_interval_s
        self._quality_task: asyncio.Task[None] | None = None
        self._closed_counts: dict[str, int] = {}
        self._ice_servers = ice_servers_from(ice_servers)
        self._host_addresses = list(host_addresses) if host_addresses is not None else None
        self._listener: MediaListener = listener or NullMediaListener()
        self._routers: dict[str, Any] = {}
        self._peers: dict[str, PeerSession] = {}
        self._producers: dict[str, tuple[ProducerInfo, Any]] = {}
        self._ids = itertools.count(1)
        self._closed = False
        # New producers are announced once their transport is connected and SSRC known.
        self._gate = AnnounceGate(lambda info: self._emit("producer_added", info))
        self._tasks: set[asyncio.Task[None]] = set()
        # Cascade relays (media/cascade.py): this node's home and edge ends.
        self.cascade = Cascade(
            producers=self._producers,
            routers=self._routers,
            router_for=self._router_for,
            new_id=self._next_id,
            emit=self._emit,
            ice_servers=self._ice_servers,
            host_addresses=self._host_addresses,
        )
        # Injected faults by peer id (to_peer, from_peer): kept across the peer's media
        # sessions (a peer that reconnects and republishes is still faulted) until cleared.
        self._faults: dict[str, tuple[AnyFaults, AnyFaults]] = {}

    def set_listener(self, listener: MediaListener) -> None:
        """Where events go; the signaling adapter sets itself here."""
        self._listener = listener

    # -- queries -------------------------------------------------------------------------

    def producers(self, lesson_id: str) -> list[ProducerInfo]:
        return [info for info, _ in self._producers.values() if info.lesson_id == lesson_id]

    def consumers(self, peer_id: str) -> list[ConsumerInfo]:
        peer = self._peers.get(peer_id)
        return [] if peer is None else [s.info for s in peer.subscriptions.values()]

    def transport(self, peer_id: str, direction: str) -> WebRtcTransport | None:
        """The peer's send or recv transport (for stats and tests)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return None
        return peer.send if direction == "send" else peer.recv

    def router(self, lesson_id: str) -> Any:
        return self._routers.get(lesson_id)

    def producer(self, producer_id: str) -> Any:
        entry = self._producers.get(producer_id)
        return None if entry is None else entry[1]

    def consumer(self, peer_id: str, producer_id: str) -> Any:
        """The peer's consumer of ``producer_id`` (either layer of a dual stream), or None."""
        peer = self._peers.get(peer_id)
        sub = None if peer is None else peer.subscriptions.get(self._main_of(producer_id))
        return None if sub is None else sub.consumer

    # -- helpers -------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def _peer(self, lesson_id: str, peer_id: str) -> PeerSession:
        if self._closed:
            raise MediaError("media_closed", "The media service is shut down.")
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = self._peers[peer_id] = PeerSession(peer_id, lesson_id)
            if self._quality_task is None and self._quality_interval_s > 0:
                self._quality_task = asyncio.ensure_future(self._run_quality())
        elif peer.lesson_id != lesson_id:
            raise MediaError(
                "wrong_lesson",
                f"Peer {peer_id} belongs to lesson {peer.lesson_id}, not {lesson_id}.",
            )
        return peer

    def _new_transport(self, peer: PeerSession, direction: str) -> WebRtcTransport:
        def on_state(transport: WebRtcTransport, state: TransportState) -> None:
            self._emit("transport_state", peer.id, direction, state.value)
            if state is TransportState.FAILED:
                logger.info("%s transport of peer %s failed", direction, peer.id)
                if direction == "send":
                    self._send_failed(peer, transport)

        transport = WebRtcTransport(
            self._next_id(f"{direction}-"),
            direction,
            ice_servers=self._ice_servers,
            host_addresses=self._host_addresses,
            on_state=on_state,
        )
        faults = self._faults.get(peer.id)
        if faults is not None:
            transport.set_faults(*faults)
        return transport

    def _emit(self, name: str, *args: Any) -> None:
        handler = getattr(self._listener, name, None)
        if handler is None:  # e.g. relay events on a listener that never relays
            return
        try:
            handler(*args)
        except Exception:
            logger.exception("media listener %s failed", name)

    # -- publishing ----------------------------------------------------------------------

    async def publish(
        self, lesson_id: str, peer_id: str, sdp: str, tracks: Sequence[TrackSpec]
    ) -> PublishResult:
        """Answer a peer's send-transport offer; one producer per new m-line.

        Every m-line of the offer needs a TrackSpec with its MID. Errors (MediaError codes):
        ``bad_sdp``, ``bad_offer``, ``bad_track``, ``duplicate_track``, ``unsupported_codec``.
        A re-offer on the same transport keeps existing producers and adds the new m-lines.
        """
        peer = self._peer(lesson_id, peer_id)
        try:
            created, answer = await self._publish(peer, sdp, tracks)
        except MediaError:
            if not peer.producers and not peer.subscriptions and peer.recv is None:
                self._peers.pop(peer.id, None)  # a refused first offer leaves nothing behind
            raise
        if created and peer.send is not None:
            self._gate.hold(peer.send, [peer.producers[info.id] for info in created])
        return PublishResult(answer, tuple(created))

    def publish_local(
        self, lesson_id: str, peer_id: str, tracks: Sequence[LocalTrack]
    ) -> list[tuple[ProducerInfo, Any]]:
        """Producers this process feeds itself (an RTSP pull: media/rtsp_ingest.py), one per
        track, announced at once: no transport, the caller hands each its RtpPackets
        (``producer.receive_rtp``). ``close_peer(peer_id)`` closes them."""
        peer = self._peer(lesson_id, peer_id)
        router = self._router_for(lesson_id)
        created: list[tuple[ProducerInfo, Any]] = []
        for track in tracks:
            info = ProducerInfo(
                id=self._next_id("p"),
                lesson_id=lesson_id,
                peer_id=peer_id,
                kind=track.codec.kind,
                source=track.source,
                layer="main",
                mid=str(len(peer.producers)),
                mime_type=track.codec.mime_type,
            )
            params = RtpParameters(codec=track.codec, ssrc=track.ssrc, mid=info.mid)
            try:
                producer = router.create_producer(
                    info.id, info.kind, info.source, "main", params, track.rtcp_sink,
                    group=f"{peer_id}/{info.source}",
                )  # fmt: skip
            except RouterError as exc:
                raise MediaError(exc.code, exc.message) from exc
            peer.producers[info.id] = self._producers[info.id] = (info, producer)
            created.append((info, producer))
        for info, _ in created:
            self._emit("producer_added", info)
        return created

    def _send_failed(self, peer: PeerSession, transport: WebRtcTransport) -> None:
        """A publisher's send transport failed (aiortc never recovers one): its producers
        close (never announced ones silently), the transport goes so that a new ``publish``
        starts afresh, and ``publish_failed(lesson, peer, reason)`` tells the publisher."""
        if self._peers.get(peer.id) is not peer or peer.send is not transport:
            return
        reason = transport.failure_reason or "the connection failed"
        logger.warning("send transport of peer %s failed: %s", peer.id, reason)
        for info, producer in list(peer.producers.values()):
            self._drop_producer(info, producer)
            producer.close()
        add_counts(self._closed_counts, transport)
        peer.send = None
        task = asyncio.ensure_future(transport.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._emit("publish_failed", peer.lesson_id, peer.id, reason)

    async def _publish(
        self, peer: PeerSession, sdp: str, tracks: Sequence[TrackSpec]
    ) -> tuple[list[ProducerInfo], str]:
        lesson_id = peer.lesson_id
        async with peer.lock:
            known = {info.mid for info, _ in peer.producers.values()}
            specs = peer.validate_tracks(sdp, tracks)
            fresh = peer.send is None
            if peer.send is None:
                peer.send = self._new_transport(peer, "send")
            transport = peer.send
            try:
                answer, incoming = await transport.accept_offer(sdp)
            except TransportError as exc:
                if fresh:
                    peer.send = None
                    await transport.close()
                raise MediaError(exc.code, exc.message) from exc
            created = peer.add_producers(
                self._router_for(lesson_id), transport, incoming, specs, known, self._next_id
            )
            for info in created:
                self._producers[info.id] = peer.producers[info.id]
        return created, answer

    async def unpublish(self, peer_id: str, producer_id: str) -> None:
        """Close one producer (its consumers close; subscribers get ``renegotiation_needed``)."""
        peer = self._peers.get(peer_id)
        if peer is None or producer_id not in peer.producers:
            raise MediaError("unknown_producer", f"Peer {peer_id} has no producer {producer_id}.")
        info, producer = peer.producers.pop(producer_id)
        self._drop_producer(info, producer)
        producer.close()

    def _drop_producer(self, info: ProducerInfo, producer: Any) -> None:
        self._producers.pop(info.id, None)
        peer = self._peers.get(info.peer_id)
        if peer is not None:
            peer.producers.pop(info.id, None)
            if peer.send is not None:
                peer.send.detach_producer(producer)
        for other in self._peers.values():
            if info.id in other.subscriptions or self._main_of(info.id) in other.subscriptions:
                self._emit("renegotiation_needed", other.id)
        self.cascade.producer_closed(info.id)
        if not self._gate.forget(info.id):  # never announced: nobody hears of it going
            self._emit("producer_removed", info)

    def _sibling(self, info: ProducerInfo, layer: str) -> ProducerInfo | None:
        for other, _ in self._producers.values():
            if (
                other.peer_id == info.peer_id
                and other.source == info.source
                and other.layer == layer
                and other.id != info.id
            ):
                return other
        return None

    def _main_of(self, producer_id: str) -> str:
        """The subscription key of a producer: its main sibling's id for a dual stream."""
        entry = self._producers.get(producer_id)
        if entry is None or entry[0].layer == "main":
            return producer_id
        main = self._sibling(entry[0], "main")
        return producer_id if main is None else main.id

    # -- subscribing -----------------------------------------------------------------------

    async def subscribe(
        self,
        lesson_id: str,
        peer_id: str,
        producer_ids: Sequence[str],
        layers: Mapping[str, str] | None = None,
    ) -> SubscribeResult | None:
        """Make ``producer_ids`` the peer's complete subscription set.

        Returns an offer for the receive transport when m-lines must change, else None (also
        None while an earlier offer awaits its answer: ``answer`` then returns the follow-up).
        ``layers`` maps a producer id to the preferred layer (``main``/``low``) of a dual
        stream. Errors: ``unknown_producer``, ``own_producer``, ``bad_layer``.
        """
        peer = self._peer(lesson_id, peer_id)
        wanted: list[str] = []
        for pid in producer_ids:
            entry = self._producers.get(pid)
            if entry is None or entry[0].lesson_id != lesson_id:
                raise MediaError("unknown_producer", f"Lesson {lesson_id} has no producer {pid}.")
            if entry[0].peer_id == peer_id:
                raise MediaError("own_producer", f"Peer {peer_id} cannot consume its own {pid}.")
            key = self._main_of(pid)
            if key not in wanted:
                wanted.append(key)
        for pid, layer in (layers or {}).items():
            if layer not in LAYERS:
                raise MediaError("bad_layer", f"Unknown layer {layer!r} for producer {pid}.")
        for pid, layer in (layers or {}).items():
            # A consumer that exists already follows the new choice too (a patrol's thumbnail
            # clicked to main keeps its consumer: only its layer changes).
            self._prefer(peer, self._main_of(pid), layer)
        peer.wanted = tuple(wanted)
        async with peer.lock:
            return await self._renegotiate(peer)

    async def resync(self, peer_id: str) -> SubscribeResult | None:
        """Renegotiate after ``renegotiation_needed`` (a consumed producer went away)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return None
        async with peer.lock:
            return await self._renegotiate(peer)

    async def _renegotiate(self, peer: PeerSession) -> SubscribeResult | None:
        return await peer.renegotiate(
            self._producers, self._next_id, lambda: self._new_transport(peer, "recv")
        )

    async def answer(self, peer_id: str, sdp: str) -> SubscribeResult | None:
        """Apply the peer's answer to our last offer; returns a follow-up offer if needed.

        An m-line the answer refuses (rejected, or no codec the receiver decodes) carries
        nothing, and ``subscribe_refused(lesson, peer, reason)`` tells the peer why.
        Errors: ``unknown_peer``, ``no_offer``, ``bad_answer``.
        """
        peer = self._peers.get(peer_id)
        if peer is None:
            raise MediaError("unknown_peer", f"Peer {peer_id} is not known to the media service.")
        async with peer.lock:
            recv = peer.recv
            if recv is None or not recv.awaiting_answer:
                raise MediaError("no_offer", f"No offer is waiting for peer {peer_id}'s answer.")
            try:
                refused = await recv.accept_answer(sdp)
            except TransportError as exc:
                raise MediaError(exc.code, exc.message) from exc
            peer.mark_answered()
            for sub in peer.subscriptions.values():
                if sub.track in refused:
                    reason = (
                        f"The {sub.info.kind} {sub.info.source} of peer "
                        f"{sub.info.publisher_peer_id} cannot be received: {sub.track.refused}."
                    )
                    logger.info("peer %s: %s", peer.id, reason)
                    self._emit("subscribe_refused", peer.lesson_id, peer.id, reason)
            recv.when_connected(lambda: peer.start_consumers(self._producers, self._routers))
            return await self._renegotiate(peer)

    def set_layer(self, peer_id: str, producer_id: str, layer: str) -> None:
        """Prefer ``layer`` for the peer's dual-stream consumer of ``producer_id``."""
        if layer not in LAYERS:
            raise MediaError("bad_layer", f"Unknown layer {layer!r}.")
        peer = self._peers.get(peer_id)
        if peer is None:
            raise MediaError("unknown_peer", f"Peer {peer_id} is not known to the media service.")
        self._prefer(peer, self._main_of(producer_id), layer)

    @staticmethod
    def _prefer(peer: PeerSession, key: str, layer: str) -> None:
        """Remember ``layer`` for the peer's consumer of ``key`` and steer it if it exists."""
        peer.layers[key] = layer
        sub = peer.subscriptions.get(key)
        if sub is not None and sub.consumer is not None:
            sub.consumer.set_preferred_layer(layer)

    def set_faults(
        self, peer_id: str, to_peer: AnyFaults = NO_FAULTS, from_peer: AnyFaults = NO_FAULTS
    ) -> None:
        """Tests and drills (media/faults.py): faults on everything sent toward ``peer_id``
        and on everything arriving from it, on both its transports, now and on any transport
        it opens later (a peer not known yet gets them when it arrives). NO_FAULTS for both
        directions clears them."""
        old = self._faults.pop(peer_id, None)
        if to_peer.active or from_peer.active:
            self._faults[peer_id] = (to_peer, from_peer)
        peer = self._peers.get(peer_id)
        if peer is not None:
            for transport in (peer.send, peer.recv):
                if transport is not None:
                    transport.set_faults(to_peer, from_peer)
        for faults in old or ():
            if faults not in (to_peer, from_peer) and isinstance(faults, FaultInjector):
                faults.close()

    def faults(self, peer_id: str) -> tuple[AnyFaults, AnyFaults]:
        """The (to_peer, from_peer) faults of a peer (NO_FAULTS when none)."""
        return self._faults.get(peer_id, (NO_FAULTS, NO_FAULTS))

    def last_heard_ms(self, peer_id: str) -> int | None:
        """Monotonic ms of the last RTP/RTCP from the peer on either transport (None: none
        ever, or no media session): liveness that does not depend on the WebSocket."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return None
        heard = max((t.last_rx_ms for t in (peer.send, peer.recv) if t is not None), default=-1)
        return heard if heard >= 0 else None

    # -- cascade relay (media/cascade.py) ----------------------------------------------------

    async def relay_offer(
        self, relay_id: str, lesson_id: str, producer_ids: Sequence[str]
    ) -> RelayOffer | None:
        """Home node: make ``producer_ids`` the complete set relayed to the edge node over
        ``relay_id`` (one stream each, both layers of a dual stream). Returns the offer for
        the edge node's ``relay_accept`` when m-lines change, else None (also while an
        earlier offer awaits its answer). Errors: ``unknown_producer``, ``wrong_lesson``."""
        self._check_open()
        return await self.cascade.offer(relay_id, lesson_id, producer_ids)

    async def relay_resync(self, relay_id: str) -> RelayOffer | None:
        """Home node, after ``relay_renegotiation_needed``: the offer ending closed tracks."""
        return await self.cascade.resync(relay_id)

    async def relay_answer(self, relay_id: str, sdp: str) -> RelayOffer | None:
        """Home node: apply the edge node's answer; returns a follow-up offer if needed.
        Errors: ``unknown_relay``, ``no_offer``, ``bad_answer``."""
        return await self.cascade.answer(relay_id, sdp)

    async def relay_accept(
        self, relay_id: str, lesson_id: str, sdp: str, tracks: Sequence[RelayTrack]
    ) -> str:
        """Edge node: answer the home node's (re)offer. New tracks become local producers
        (``producer_added``, the origin's peer/kind/source/layer); ended ones close
        (``producer_removed``). Errors: ``bad_sdp``, ``bad_track``, ``duplicate_track``,
        ``bad_offer``, ``unsupported_codec``, ``wrong_lesson``."""
        self._check_open()
        return await self.cascade.accept(relay_id, lesson_id, sdp, tracks)

    def relay_producers(self, relay_id: str) -> dict[str, ProducerInfo]:
        """Edge node: the home node's producer id -> the local producer relaying it."""
        receiver = self.cascade.receivers.get(relay_id)
        return {} if receiver is None else receiver.origin_ids()

    async def close_relay(self, relay_id: str) -> None:
        """Close this node's end of a relay (idempotent); the edge end's producers close."""
        await self.cascade.close(relay_id)

    def _check_open(self) -> None:
        if self._closed:
            raise MediaError("media_closed", "The media service is shut down.")

    # -- lifecycle -------------------------------------------------------------------------

    def _router_for(self, lesson_id: str) -> Any:
        router = self._routers.get(lesson_id)
        if router is None:
            router = self._routers[lesson_id] = Router(lesson_id)
            router.events.on("producer_closed", self._on_producer_closed)
            router.events.on("active_speaker", lambda pid: self._on_active_speaker(lesson_id, pid))
        return router

    def _on_producer_closed(self, producer_id: str) -> None:
        entry = self._producers.get(producer_id)
        if entry is not None:
            self._drop_producer(*entry)

    def _on_active_speaker(self, lesson_id: str, producer_id: str | None) -> None:
        entry = None if producer_id is None else self._producers.get(producer_id)
        self._emit("active_speaker", lesson_id, None if entry is None else entry[0].peer_id)

    async def close_peer(self, peer_id: str) -> None:
        """Close a peer's transports, producers and consumers (idempotent)."""
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return
        # Its transports' counters stay in the totals (metrics counters never go back).
        for transport in (peer.send, peer.recv):
            if transport is not None:
                add_counts(self._closed_counts, transport)
        for info, producer in list(peer.producers.values()):
            self._drop_producer(info, producer)
            producer.close()
        peer.producers.clear()
        await peer.close()

    async def close_lesson(self, lesson_id: str) -> None:
        for peer_id in [p.id for p in self._peers.values() if p.lesson_id == lesson_id]:
            await self.close_peer(peer_id)
        await self.cascade.close_lesson(lesson_id)
        router = self._routers.pop(lesson_id, None)
        if router is not None:
            router.close()

    async def close(self) -> None:
        """Close everything (idempotent); later calls raise ``media_closed``."""
        self._closed = True
        if self._quality_task is not None:
            self._quality_task.cancel()
            self._quality_task = None
        for lesson_id in {p.lesson_id for p in self._peers.values()} | set(self._routers):
            await self.close_lesson(lesson_id)
        await self.cascade.close_all()

    # -- quality, pause, stats ---------------------------------------------------------------

    async def _run_quality(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._quality_interval_s)
                now = hooks.now_ms()
                for peer in list(self._peers.values()):
                    consumers = [s.consumer for s in peer.subscriptions.values() if s.consumer]
                    producers = [p for _, p in peer.producers.values()]
                    if not consumers and not producers:
                        continue
                    quality = peer.quality.sample(now, producers, consumers)
                    self._emit("peer_quality", peer.lesson_id, peer.id, quality)
        except asyncio.CancelledError:
            pass

    def set_consumer_paused(self, peer_id: str, producer_id: str, paused: bool) -> None:
        """Pause/resume what ``peer_id`` receives of ``producer_id`` without renegotiating
        (e.g. a receiver's audio to the lead while muted); resume restarts at a keyframe."""
        peer = self._peers.get(peer_id)
        if peer is None:
            raise MediaError("unknown_peer", f"Peer {peer_id} is not known to the media service.")
        sub = peer.subscriptions.get(self._main_of(producer_id))
        if sub is None:
            raise MediaError("unknown_consumer", f"Peer {peer_id} does not consume {producer_id}.")
        sub.paused = paused
        if sub.consumer is not None:
            if paused:
                sub.consumer.pause()
            else:
                sub.consumer.resume()

    def set_producer_paused(self, producer_id: str, paused: bool) -> None:
        """Pause/resume a producer for everyone (a publisher's muted microphone)."""
        entry = self._producers.get(producer_id)
        if entry is None:
            raise MediaError("unknown_producer", f"There is no producer {producer_id}.")
        if paused:
            entry[1].pause()
        else:
            entry[1].resume()

    def peer_qualities(self) -> Iterator[tuple[str, str, PeerQuality]]:
        """(lesson id, peer id, latest quality sample) of every peer sampled so far."""
        for peer in self._peers.values():
            if peer.quality.last is not None:
                yield peer.lesson_id, peer.id, peer.quality.last

    def stats(self) -> dict[str, int]:
        """Process-wide counts for metrics: gauges of what is open now, and the transports'
        packet counters (``TRANSPORT_COUNTERS``) since start, closed peers' included."""
        transports = [t for p in self._peers.values() for t in (p.send, p.recv) if t is not None]
        relays = [*self.cascade.senders.values(), *self.cascade.receivers.values()]
        transports += [r.transport for r in relays]
        totals: dict[str, int] = {
            **self.cascade.stats(),
            "lessons": len(self._routers),
            "peers": len(self._peers),
            "producers": len(self._producers),
            "consumers": sum(
                1 for p in self._peers.values() for s in p.subscriptions.values() if s.consumer
            ),
            "transports": len(transports),
        }
        for key in TRANSPORT_COUNTERS:
            totals[key] = self._closed_counts.get(key, 0) + self.cascade.closed_counts.get(key, 0)
        for transport in transports:
            add_counts(totals, transport)
        return totals

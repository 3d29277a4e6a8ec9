"""The MediaPort on the real SFU: translates between the room's vocabulary and MediaService.

The room speaks of (peer, source, layer) and grants; MediaService speaks of producer ids and
SDP. This adapter keeps the mapping between the two, forwards the SFU's events to the room
(producers, quality, active speaker, its own renegotiations) and to any extra listeners
(the recorder).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from media.faults import NO_FAULTS
from media.sfu import MediaError as SfuError
from media.sfu import MediaService, ProducerInfo, SubscribeResult, TrackSpec
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
from signaling.policy import Layer, ProducerRef, PublishedTrack

log = logging.getLogger(__name__)

# SFU failure codes by what they mean to the client: its SDP was refused, or the service is
# gone; anything else (a producer vanishing mid-call, say) is the server's own failure.
_BAD_SDP = frozenset(
    {"bad_sdp", "bad_offer", "bad_track", "duplicate_track", "unsupported_codec", "bad_answer",
     "no_offer", "unknown_peer"}
)  # fmt: skip
_UNAVAILABLE = frozenset({"media_closed", "transport_closed"})


class MediaObserver(Protocol):
    """Another part that follows the SFU (the recorder): peers as they publish, producers."""

    def peer_seen(self, peer: PeerInfo) -> None: ...

    def producer_added(self, info: ProducerInfo) -> None: ...

    def producer_removed(self, info: ProducerInfo) -> None: ...


def _refused(exc: SfuError) -> MediaError:
    if exc.code in _BAD_SDP:
        return MediaError(ErrorCode.INVALID_SDP, exc.message)
    if exc.code in _UNAVAILABLE:
        return MediaError(ErrorCode.MEDIA_UNAVAILABLE, exc.message)
    return MediaError(ErrorCode.INTERNAL_ERROR, exc.message)


def quality_report(quality: Any) -> QualityReport:
    """The room's report from media.quality's per-peer sample."""
    down = quality.downstream
    up = quality.upstream
    # The worse direction is what a teacher experiences.
    return QualityReport(
        loss=max(down.loss, up.loss),
        jitter_ms=max(down.jitter_ms, up.jitter_ms),
        rtt_ms=down.rtt_ms if down.rtt_ms is not None else up.rtt_ms,
        bitrate_kbps=(down.bitrate_bps + up.bitrate_bps) / 1000.0,
    )


class SfuMediaPort:
    def __init__(self, service: MediaService) -> None:
        self.service = service
        self._listener: MediaListener | None = None
        self._observers: list[MediaObserver] = []
        self._peers: dict[str, PeerInfo] = {}
        # What each subscriber was last asked to receive: its offers name the layer it asked
        # for (what producers_changed said), not the main producer that keys the consumer.
        self._wanted: dict[str, frozenset[ProducerRef]] = {}
        # (peer_id, source, layer) -> producer id, and back.
        self._ids: dict[tuple[str, str, str], str] = {}
        self._refs: dict[str, ProducerInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        service.set_listener(self)

    # MediaPort -----------------------------------------------------------------------------

    def set_listener(self, listener: MediaListener) -> None:
        self._listener = listener

    def add_observer(self, observer: MediaObserver) -> None:
        self._observers.append(observer)

    async def publish(self, peer: PeerInfo, sdp: str, tracks: Sequence[TrackOffer]) -> str:
        self.remember(peer)
        specs = [TrackSpec(t.mid, t.source.value, t.layer.value) for t in tracks]
        try:
            result = await self.service.publish(peer.lesson_id, peer.peer_id, sdp, specs)
        except SfuError as exc:
            raise _refused(exc) from None
        return result.sdp

    def publish_local(self, peer: PeerInfo, tracks: Sequence[Any]) -> list[Any]:
        """Producers this process feeds (an RTSP pull), announced as ``peer``'s: the media
        plane's (ProducerInfo, producer) pairs. Raises MediaError."""
        self.remember(peer)
        try:
            return self.service.publish_local(peer.lesson_id, peer.peer_id, tracks)
        except SfuError as exc:
            raise _refused(exc) from None

    async def set_subscriptions(
        self, peer: PeerInfo, refs: frozenset[ProducerRef]
    ) -> SubscriptionOffer | None:
        self._peers[peer.peer_id] = peer
        self._wanted[peer.peer_id] = refs
        wanted: list[str] = []
        layers: dict[str, str] = {}
        for ref in refs:
            pid = self.producer_for(ref)
            if pid is None:
                continue  # not published (yet): producers_changed will bring it
            wanted.append(pid)
            layers[pid] = ref.layer.value
        try:
            result = await self.service.subscribe(peer.lesson_id, peer.peer_id, wanted, layers)
        except SfuError as exc:
            raise _refused(exc) from None
        return self._offer(result, peer.peer_id)

    async def subscribe_answer(self, peer: PeerInfo, sdp: str) -> SubscriptionOffer | None:
        try:
            return self._offer(await self.service.answer(peer.peer_id, sdp), peer.peer_id)
        except SfuError as exc:
            raise _refused(exc) from None

    def producer_for(self, ref: ProducerRef) -> str | None:
        """The producer id serving ``ref`` (the other layer of a pair when that one is
        missing), or None when it is not published (yet)."""
        pid = self._ids.get((ref.peer_id, ref.source.value, ref.layer.value))
        if pid is None:  # no such layer: the other one of the pair serves
            pid = self._ids.get((ref.peer_id, ref.source.value, Layer.MAIN.value))
        if pid is None:
            pid = self._ids.get((ref.peer_id, ref.source.value, Layer.LOW.value))
        return pid

    def remember(self, peer: PeerInfo) -> None:
        """A publisher (here, or on another node: server/cluster/media_port.py): its producers
        are announced to the room with its role and classroom."""
        self._peers[peer.peer_id] = peer
        for observer in self._observers:
            self._safely(observer.peer_seen, peer)

    def last_heard_ms(self, peer_id: str) -> int | None:
        """Monotonic ms of the peer's last RTP/RTCP: liveness beside the WebSocket (the
        RoomManager's early lost check; optional, ports without it rely on heartbeats)."""
        return self.service.last_heard_ms(peer_id)

    def clear_faults(self, peer_id: str) -> None:
        """The peer is gone for good: a drill's media faults on it go too."""
        self.service.set_faults(peer_id, NO_FAULTS, NO_FAULTS)

    def move_faults(self, old_peer_id: str, new_peer_id: str) -> None:
        """A new peer took the classroom over: the drill's media faults apply to it."""
        to_peer, from_peer = self.service.faults(old_peer_id)
        self.service.set_faults(old_peer_id, NO_FAULTS, NO_FAULTS)
        self.service.set_faults(new_peer_id, to_peer, from_peer)

    async def close_peer(self, peer: PeerInfo) -> None:
        self._peers.pop(peer.peer_id, None)
        self._wanted.pop(peer.peer_id, None)
        await self.service.close_peer(peer.peer_id)

    async def close(self) -> None:
        """Stops the adapter's own renegotiation tasks; whoever made the service closes it."""
        for task in tuple(self._tasks):
            task.cancel()

    # media.sfu.MediaListener -----------------------------------------------------------------

    def producer_added(self, info: ProducerInfo) -> None:
        self._ids[(info.peer_id, info.source, info.layer)] = info.id
        self._refs[info.id] = info
        self._tracks_changed(info)
        for observer in self._observers:
            self._safely(observer.producer_added, info)

    def producer_removed(self, info: ProducerInfo) -> None:
        if self._ids.get((info.peer_id, info.source, info.layer)) == info.id:
            del self._ids[(info.peer_id, info.source, info.layer)]
        self._refs.pop(info.id, None)
        self._tracks_changed(info)
        for observer in self._observers:
            self._safely(observer.producer_removed, info)

    def renegotiation_needed(self, peer_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._resync(peer_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def active_speaker(self, lesson_id: str, peer_id: str | None) -> None:
        if self._listener is not None:
            self._listener.active_speaker_changed(lesson_id, peer_id)

    def peer_info(self, peer_id: str) -> PeerInfo | None:
        """Who a peer with media here is (its role and classroom), if it joined here."""
        return self._peers.get(peer_id)

    def peer_quality(self, lesson_id: str, peer_id: str, quality: Any) -> None:
        if self._listener is None:
            return
        self._listener.quality_changed(lesson_id, peer_id, quality_report(quality))

    def transport_state(self, peer_id: str, direction: str, state: str) -> None:
        return None

    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None:
        failed = getattr(self._listener, "publish_failed", None)
        if failed is not None:
            failed(lesson_id, peer_id, reason)

    def subscribe_refused(self, lesson_id: str, peer_id: str, reason: str) -> None:
        refused = getattr(self._listener, "subscribe_refused", None)
        if refused is not None:
            refused(lesson_id, peer_id, reason)

    # internals -----------------------------------------------------------------------------

    def _offer(self, result: SubscribeResult | None, peer_id: str) -> SubscriptionOffer | None:
        if result is None:
            return None
        asked = {(r.peer_id, r.source): r.layer for r in self._wanted.get(peer_id, ())}
        consumers = []
        for consumer in result.consumers:
            info = self._refs.get(consumer.producer_id)
            if info is None:
                continue
            source = Source(info.source)
            ref = ProducerRef(
                info.peer_id,
                source,
                asked.get((info.peer_id, source), Layer(info.layer)),
                self.classroom_of(info.peer_id),
            )
            consumers.append(OfferedConsumer(consumer.id, consumer.mid, ref))
        return SubscriptionOffer(result.sdp, tuple(consumers))

    def classroom_of(self, peer_id: str) -> str | None:
        """The classroom of a peer this port has seen publish, subscribe or be remembered."""
        peer = self._peers.get(peer_id)
        return peer.classroom_id if peer is not None else None

    def _tracks_changed(self, info: ProducerInfo) -> None:
        peer = self._peers.get(info.peer_id)
        if peer is None or self._listener is None:
            return
        layers: dict[str, set[Layer]] = {}
        for (peer_id, source, layer), _ in self._ids.items():
            if peer_id == info.peer_id:
                layers.setdefault(source, set()).add(Layer(layer))
        tracks = tuple(
            PublishedTrack(peer.peer_id, peer.role, peer.classroom_id, Source(src), frozenset(ls))
            for src, ls in sorted(layers.items())
        )
        self._listener.producers_changed(peer.lesson_id, peer.peer_id, tracks)

    async def _resync(self, peer_id: str) -> None:
        peer = self._peers.get(peer_id)
        if peer is None or self._listener is None:
            return
        try:
            offer = self._offer(await self.service.resync(peer_id), peer_id)
        except SfuError as exc:
            log.warning("resync of %s failed: %s", peer_id, exc.message)
            return
        if offer is not None:
            self._listener.subscription_offer(peer.lesson_id, peer_id, offer)

    @staticmethod
    def _safely(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("media observer %r failed", fn)

"""One peer inside the media service: its transports, producers and subscriptions.

``PeerSession.renegotiate`` diffs the wanted producer set against the current m-lines of
the receive transport and builds the (re)offer; ``start_consumers`` creates the consumers
of answered m-lines once the transport is connected (so the first packet a subscriber gets
is the keyframe its consumer waited for, never a packet aiortc would misroute).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from media import aiortc_hooks as hooks
from media import sdp_compat
from media.negotiation import IncomingTrack, OutgoingTrack
from media.quality import QualityMeter
from media.router import RouterError
from media.sfu_types import (
    LAYERS,
    SOURCES,
    ConsumerInfo,
    MediaError,
    ProducerInfo,
    SubscribeResult,
    TrackSpec,
)
from media.transport import WebRtcTransport

logger = logging.getLogger(__name__)

Producers = Mapping[str, tuple[ProducerInfo, Any]]


@dataclass(slots=True)
class Subscription:
    info: ConsumerInfo
    track: OutgoingTrack
    consumer: Any = None  # created once the transport is connected and the answer applied
    paused: bool = False
    answered: bool = False  # the peer accepted an offer holding this m-line


@dataclass(slots=True)
class PeerSession:
    id: str
    lesson_id: str
    send: WebRtcTransport | None = None
    recv: WebRtcTransport | None = None
    producers: dict[str, tuple[ProducerInfo, Any]] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # by main producer id
    wanted: tuple[str, ...] = ()
    layers: dict[str, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    quality: QualityMeter = field(default_factory=QualityMeter)

    def validate_tracks(self, sdp: str, tracks: Sequence[TrackSpec]) -> dict[str, TrackSpec]:
        """The TrackSpec of every new m-line of ``sdp``; MediaError when one is missing/wrong."""
        known = {info.mid for info, _ in self.producers.values()}
        specs: dict[str, TrackSpec] = {}
        for spec in tracks:
            if spec.source not in SOURCES:
                raise MediaError(
                    "bad_track", f"Unknown source {spec.source!r} for m-line {spec.mid}."
                )
            if spec.layer not in LAYERS:
                raise MediaError(
                    "bad_track", f"Unknown layer {spec.layer!r} for m-line {spec.mid}."
                )
            specs[spec.mid] = spec
        try:
            media = hooks.parse_sdp(sdp_compat.normalize(sdp)).media
        except (ValueError, IndexError, KeyError) as exc:
            raise MediaError("bad_sdp", f"The offer is not valid SDP: {exc}.") from exc
        taken = {(info.source, info.layer) for info, _ in self.producers.values()}
        for m in media:
            mid = str(m.rtp.muxId)
            if mid in known:
                continue
            spec = specs.get(mid)
            if spec is None:
                raise MediaError("bad_track", f"m-line {mid} has no track description.")
            if SOURCES[spec.source] != m.kind:
                raise MediaError(
                    "bad_track", f"m-line {mid} carries {m.kind}, but source {spec.source} is not."
                )
            if (spec.source, spec.layer) in taken:
                raise MediaError(
                    "duplicate_track",
                    f"Peer {self.id} already publishes {spec.source}/{spec.layer}.",
                )
            taken.add((spec.source, spec.layer))
        return specs

    async def renegotiate(
        self,
        producers: Producers,
        new_id: Callable[[str], str],
        new_recv: Callable[[], WebRtcTransport],
    ) -> SubscribeResult | None:
        """Offer the m-line changes ``wanted`` needs (None when nothing changes or an
        earlier offer still waits for its answer)."""
        peer = self
        recv = peer.recv
        if recv is not None and recv.awaiting_answer:
            return None
        wanted = [k for k in peer.wanted if k in producers]
        removed = [k for k in peer.subscriptions if k not in wanted]
        added = [k for k in wanted if k not in peer.subscriptions]
        if not removed and not added:
            return None
        if recv is None:
            recv = peer.recv = new_recv()
        for key in removed:
            sub = peer.subscriptions.pop(key)
            self.close_subscription(recv, sub)
        for key in added:
            info, producer = producers[key]
            consumer_id = new_id("c")
            # Audio to a subscriber carries RED when its answer keeps it (a relay never).
            track = recv.add_outgoing(producer.params.codec, info.peer_id, consumer_id, red=True)
            peer.subscriptions[key] = Subscription(
                ConsumerInfo(
                    id=consumer_id,
                    peer_id=peer.id,
                    producer_id=key,
                    kind=info.kind,
                    source=info.source,
                    publisher_peer_id=info.peer_id,
                    mid="",
                ),
                track,
            )
        offer = await recv.create_offer()
        for sub in peer.subscriptions.values():
            if not sub.info.mid and sub.track.mid:
                sub.info = replace(sub.info, mid=sub.track.mid)
        return SubscribeResult(offer, tuple(s.info for s in peer.subscriptions.values()))

    @staticmethod
    def close_subscription(recv: WebRtcTransport, sub: Subscription) -> None:
        if sub.consumer is not None:
            recv.detach_consumer(sub.consumer)
            sub.consumer.close()
            sub.consumer = None
        recv.remove_outgoing(sub.track)

    def start_consumers(self, producers: Producers, routers: Mapping[str, Any]) -> None:
        """Create consumers for answered m-lines (call once the transport is connected)."""
        peer = self
        recv = peer.recv
        if recv is None or recv.closed:
            return
        for key, sub in peer.subscriptions.items():
            if sub.consumer is not None or not sub.answered or sub.track.params is None:
                continue
            entry = producers.get(key)
            if entry is None:
                continue
            info, _ = entry
            router = routers.get(info.lesson_id)
            if router is None:
                continue
            try:
                sub.consumer = router.create_consumer(
                    sub.info.id,
                    key,
                    sub.track.params,
                    recv,
                    preferred_layer=peer.layers.get(key, "main"),
                    paused=sub.paused,
                )
            except RouterError:
                logger.exception("consumer %s of peer %s not created", sub.info.id, peer.id)
                continue
            recv.attach_consumer(sub.consumer, sub.track.params)

    def add_producers(
        self,
        router: Any,
        transport: WebRtcTransport,
        incoming: Sequence[IncomingTrack],
        specs: Mapping[str, TrackSpec],
        known: set[str],
        new_id: Callable[[str], str],
    ) -> list[ProducerInfo]:
        """One producer per new answered m-line, routed from ``transport``."""
        created: list[ProducerInfo] = []
        for track in incoming:
            if track.mid in known:
                continue
            spec = specs[track.mid]
            info = ProducerInfo(
                id=new_id("p"),
                lesson_id=self.lesson_id,
                peer_id=self.id,
                kind=track.kind,
                source=spec.source,
                layer=spec.layer,
                mid=track.mid,
                mime_type=track.params.codec.mime_type,
            )
            try:
                producer = router.create_producer(
                    info.id,
                    info.kind,
                    info.source,
                    info.layer,
                    track.params,
                    transport,
                    group=f"{self.id}/{info.source}",
                )
            except RouterError as exc:
                raise MediaError(exc.code, exc.message) from exc
            transport.attach_producer(producer, track.params)
            self.producers[info.id] = (info, producer)
            created.append(info)
        return created

    def mark_answered(self) -> None:
        """The peer answered our last offer: every m-line offered so far is live."""
        for sub in self.subscriptions.values():
            # A refused m-line (the receiver cannot decode the codec) never gets a consumer.
            if sub.track.params is not None and not sub.track.refused:
                sub.answered = True

    async def close(self) -> None:
        """Close consumers, then both transports (producers are closed by the service)."""
        for sub in self.subscriptions.values():
            if sub.consumer is not None:
                sub.consumer.close()
                sub.consumer = None
        self.subscriptions.clear()
        for transport in (self.send, self.recv):
            if transport is not None:
                await transport.close()

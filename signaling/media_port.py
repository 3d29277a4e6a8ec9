"""The port through which signaling drives the media plane (media/ implements it).

The room validates and authorizes every media message, then calls the port. The media
plane reports back through a MediaListener: which tracks a peer publishes (with their
layers) and per-peer connection quality. signaling never touches RTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from signaling.errors import ErrorCode, SignalingError
from signaling.grants import Role, Source
from signaling.policy import Layer, ProducerRef, PublishedTrack


@dataclass(frozen=True, slots=True)
class TrackOffer:
    """A track a peer announces in its publish offer: the SDP mid and what it carries."""

    mid: str
    source: Source
    layer: Layer


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who a media call is about; enough for the media plane to place and label it."""

    lesson_id: str
    peer_id: str
    role: Role
    classroom_id: str | None


@dataclass(frozen=True, slots=True)
class OfferedConsumer:
    consumer_id: str
    mid: str
    producer: ProducerRef


@dataclass(frozen=True, slots=True)
class SubscriptionOffer:
    """The server's offer for a peer's receive transport after its subscriptions changed."""

    sdp: str
    consumers: tuple[OfferedConsumer, ...]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One peer's connection quality, from RTCP (loss as a fraction 0..1)."""

    loss: float
    jitter_ms: float
    rtt_ms: float | None
    bitrate_kbps: float


class MediaError(SignalingError):
    """A media call failed; `code` is media_unavailable or invalid_sdp (or internal_error)."""


class MediaListener(Protocol):
    """What the media plane calls back (plain calls, from the event loop; they never block)."""

    def producers_changed(
        self, lesson_id: str, peer_id: str, tracks: tuple[PublishedTrack, ...]
    ) -> None: ...

    def quality_changed(self, lesson_id: str, peer_id: str, report: QualityReport) -> None: ...

    def active_speaker_changed(self, lesson_id: str, peer_id: str | None) -> None:
        """The loudest publisher of the lesson changed (None: silence)."""
        ...

    def subscription_offer(self, lesson_id: str, peer_id: str, offer: SubscriptionOffer) -> None:
        """The media plane renegotiated on its own (a consumed producer went away)."""
        ...

    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None:
        """The peer's published media failed to connect or broke (``reason``, a sentence):
        its tracks are withdrawn; the peer is told with a ``transport_failed`` error."""
        ...

    def subscribe_refused(self, lesson_id: str, peer_id: str, reason: str) -> None:
        """The peer's answer refused an m-line (it cannot decode the producer's codec;
        ``reason``, a sentence): the peer is told with an ``unsupported_codec`` error."""
        ...

    def media_lost(self, lesson_id: str, peer_id: str) -> None:
        """The node that served the peer's media is gone (many nodes): the peer must connect
        again, and its media is set up afresh on a live node."""
        ...


class MediaPort(Protocol):
    def set_listener(self, listener: MediaListener) -> None: ...

    async def publish(self, peer: PeerInfo, sdp: str, tracks: Sequence[TrackOffer]) -> str:
        """Applies a publish offer; returns the answer SDP. Raises MediaError."""
        ...

    async def set_subscriptions(
        self, peer: PeerInfo, refs: frozenset[ProducerRef]
    ) -> SubscriptionOffer | None:
        """Makes `refs` what the peer receives; an offer when the receive transport must be
        renegotiated, None when nothing changed on the wire. Raises MediaError."""
        ...

    async def subscribe_answer(self, peer: PeerInfo, sdp: str) -> SubscriptionOffer | None:
        """Applies the peer's answer to the last subscription offer; returns a follow-up offer
        when the wanted set changed while the first one was out. Raises MediaError."""
        ...

    async def close_peer(self, peer: PeerInfo) -> None:
        """Releases every transport, producer and consumer of the peer. Idempotent."""
        ...

    def last_heard_ms(self, peer_id: str) -> int | None:
        """Monotonic ms of the peer's last incoming packet; None when it sends no media."""
        ...

    def clear_faults(self, peer_id: str) -> None:
        """Drops a fault drill's media faults of the peer (it left for good). Idempotent."""
        ...

    def move_faults(self, old_peer_id: str, new_peer_id: str) -> None:
        """A new peer took a classroom over: the drill's media faults go with it."""
        ...

    async def close(self) -> None: ...


class NullMediaPort:
    """The media plane until one is wired in: media messages get media_unavailable."""

    def set_listener(self, listener: MediaListener) -> None:
        return None

    async def publish(self, peer: PeerInfo, sdp: str, tracks: Sequence[TrackOffer]) -> str:
        raise MediaError(ErrorCode.MEDIA_UNAVAILABLE, "No media plane runs on this node.")

    async def set_subscriptions(
        self, peer: PeerInfo, refs: frozenset[ProducerRef]
    ) -> SubscriptionOffer | None:
        raise MediaError(ErrorCode.MEDIA_UNAVAILABLE, "No media plane runs on this node.")

    async def subscribe_answer(self, peer: PeerInfo, sdp: str) -> SubscriptionOffer | None:
        raise MediaError(ErrorCode.MEDIA_UNAVAILABLE, "No media plane runs on this node.")

    async def close_peer(self, peer: PeerInfo) -> None:
        return None

    def last_heard_ms(self, peer_id: str) -> int | None:
        return None

    def clear_faults(self, peer_id: str) -> None:
        return None

    def move_faults(self, old_peer_id: str, new_peer_id: str) -> None:
        return None

    async def close(self) -> None:
        return None

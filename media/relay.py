"""The two ends of a cascade relay and what crosses between nodes (see media/cascade.py).

``RelayTrack``/``RelayOffer`` are the JSON-able values the cluster layer carries between
nodes. ``RelaySender`` is the home node's end (a receive-direction transport, one
``SimpleConsumer`` per relayed producer); ``RelayReceiver`` is the edge node's end (a
send-direction transport whose m-lines become local producers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from media import aiortc_hooks as hooks
from media.negotiation import OutgoingTrack
from media.router import RouterError
from media.sfu_types import LAYERS, SOURCES, MediaError, ProducerInfo
from media.transport import TransportError, WebRtcTransport

logger = logging.getLogger(__name__)

Producers = MutableMapping[str, tuple[ProducerInfo, Any]]
ACTIVE = ("sendonly", "sendrecv")


@dataclass(frozen=True, slots=True)
class RelayTrack:
    """What one relayed m-line carries: the home node's producer and its metadata."""

    mid: str
    producer_id: str  # the producer on the home node
    peer_id: str  # the publisher (the lead)
    kind: str  # audio | video
    source: str  # camera | board | screen | mic
    layer: str  # main | low

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RelayTrack:
        """Parse the JSON form; MediaError ``bad_track`` names the missing or bad field."""
        if not isinstance(data, Mapping):
            raise MediaError("bad_track", "A relay track must be an object.")
        values: dict[str, str] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if not isinstance(value, str) or not value:
                raise MediaError("bad_track", f"Relay track field {f.name!r} is missing.")
            values[f.name] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RelayOffer:
    """A (re)offer from the home node: SDP plus every track the relay carries after it."""

    sdp: str
    tracks: tuple[RelayTrack, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"sdp": self.sdp, "tracks": [t.to_dict() for t in self.tracks]}

    @classmethod
    def from_dict(cls, data: Any) -> RelayOffer:
        if not isinstance(data, Mapping) or not isinstance(data.get("sdp"), str):
            raise MediaError("bad_sdp", "A relay offer needs an 'sdp' string.")
        tracks = data.get("tracks")
        if not isinstance(tracks, list):
            raise MediaError("bad_track", "A relay offer needs a 'tracks' list.")
        return cls(data["sdp"], tuple(RelayTrack.from_dict(t) for t in tracks))


# -- home node ---------------------------------------------------------------------------


@dataclass(slots=True)
class RelayStream:
    """One relayed producer on the home node: its m-line and (once answered) its consumer."""

    info: ProducerInfo
    consumer_id: str
    track: OutgoingTrack
    consumer: Any = None
    answered: bool = False

    def relay_track(self) -> RelayTrack:
        i = self.info
        return RelayTrack(str(self.track.mid), i.id, i.peer_id, i.kind, i.source, i.layer)


class RelaySender:
    """The home node's end of one relay: a subscriber that is a node (media/cascade.py)."""

    def __init__(self, relay_id: str, lesson_id: str, transport: WebRtcTransport) -> None:
        self.id = relay_id
        self.lesson_id = lesson_id
        self.transport = transport
        self.wanted: tuple[str, ...] = ()
        self.streams: dict[str, RelayStream] = {}  # by home producer id
        self.lock = asyncio.Lock()

    async def renegotiate(
        self, producers: Producers, new_id: Callable[[str], str]
    ) -> RelayOffer | None:
        """Offer the m-line changes ``wanted`` needs; None when nothing changes or an earlier
        offer still waits for its answer."""
        transport = self.transport
        if transport.awaiting_answer:
            return None
        wanted = [pid for pid in self.wanted if pid in producers]
        removed = [pid for pid in self.streams if pid not in wanted]
        added = [pid for pid in wanted if pid not in self.streams]
        if not removed and not added:
            return None
        for pid in removed:
            self._drop(self.streams.pop(pid))
        for pid in added:
            info, producer = producers[pid]
            consumer_id = new_id("c")
            track = transport.add_outgoing(producer.params.codec, info.peer_id, consumer_id)
            self.streams[pid] = RelayStream(info, consumer_id, track)
        sdp = await transport.create_offer()
        return RelayOffer(sdp, self.tracks())

    def tracks(self) -> tuple[RelayTrack, ...]:
        return tuple(s.relay_track() for s in self.streams.values() if s.track.mid)

    async def accept_answer(self, sdp: str) -> None:
        await self.transport.accept_answer(sdp)
        for stream in self.streams.values():
            if stream.track.params is not None:
                stream.answered = True

    def start_consumers(self, routers: Mapping[str, Any]) -> None:
        """Consumers for answered m-lines (once connected: the first packet B gets is the
        keyframe the consumer waited for). Layered=False: both layers go, as they are."""
        router = routers.get(self.lesson_id)
        if router is None or self.transport.closed:
            return
        for pid, stream in self.streams.items():
            params = stream.track.params
            if stream.consumer is not None or not stream.answered or params is None:
                continue
            if router.get_producer(pid) is None:
                continue  # closed meanwhile: the next offer ends its m-line
            try:
                stream.consumer = router.create_consumer(
                    stream.consumer_id, pid, params, self.transport, layered=False
                )
            except RouterError:
                logger.exception("relay %s: consumer of %s not created", self.id, pid)
                continue
            self.transport.attach_consumer(stream.consumer, params)

    def producer_closed(self, producer_id: str) -> bool:
        """A relayed producer closed (its consumer with it): True if B must be told."""
        stream = self.streams.get(producer_id)
        if stream is None:
            return False
        if stream.consumer is not None:
            self.transport.detach_consumer(stream.consumer)
            stream.consumer = None  # the router closed it
        return True

    def _drop(self, stream: RelayStream) -> None:
        if stream.consumer is not None:
            self.transport.detach_consumer(stream.consumer)
            stream.consumer.close()
            stream.consumer = None
        self.transport.remove_outgoing(stream.track)

    async def close(self) -> None:
        for stream in self.streams.values():
            if stream.consumer is not None:
                stream.consumer.close()
                stream.consumer = None
        self.streams.clear()
        await self.transport.close()


# -- edge node ---------------------------------------------------------------------------


class RelayReceiver:
    """The edge node's end of one relay: relayed m-lines become local producers."""

    def __init__(self, relay_id: str, lesson_id: str, transport: WebRtcTransport) -> None:
        self.id = relay_id
        self.lesson_id = lesson_id
        self.transport = transport
        self.tracks: dict[str, RelayTrack] = {}  # by mid
        self.producers: dict[str, tuple[ProducerInfo, Any]] = {}  # by mid
        self.lock = asyncio.Lock()

    def plan(
        self, sdp: str, tracks: Sequence[RelayTrack]
    ) -> tuple[dict[str, RelayTrack], list[str]]:
        """Check an offer and its track list BEFORE aiortc applies it (it cannot roll back).

        Returns the new tracks by mid and the mids whose producers end. MediaError codes:
        ``bad_sdp``, ``bad_offer``, ``bad_track``, ``duplicate_track``.
        """
        try:
            media = hooks.parse_sdp(sdp).media
        except (ValueError, IndexError, KeyError) as exc:
            raise MediaError("bad_sdp", f"The relay offer is not valid SDP: {exc}.") from exc
        if not media:
            raise MediaError("bad_offer", "The relay offer has no m-line.")
        active = {str(m.rtp.muxId): m.kind for m in media if m.direction in ACTIVE}
        by_mid: dict[str, RelayTrack] = {}
        taken: set[tuple[str, str, str]] = set()
        for track in tracks:
            if SOURCES.get(track.source) != track.kind or track.layer not in LAYERS:
                raise MediaError(
                    "bad_track",
                    f"Relay track {track.mid}: {track.kind}/{track.source}/{track.layer} "
                    "is not a known kind, source and layer.",
                )
            if track.mid in by_mid:
                raise MediaError("bad_track", f"Relay track {track.mid} is listed twice.")
            if active.get(track.mid) != track.kind:
                raise MediaError(
                    "bad_track", f"Relay track {track.mid} has no active {track.kind} m-line."
                )
            known = self.tracks.get(track.mid)
            if known is not None and known != track:
                raise MediaError("bad_track", f"Relay track {track.mid} cannot change what it is.")
            key = (track.peer_id, track.source, track.layer)
            if key in taken:
                raise MediaError("duplicate_track", f"Relay carries {'/'.join(key)} twice.")
            taken.add(key)
            by_mid[track.mid] = track
        for mid in active:
            if mid not in by_mid:
                raise MediaError("bad_track", f"Relay m-line {mid} has no track description.")
        fresh = {mid: t for mid, t in by_mid.items() if mid not in self.tracks}
        ended = [mid for mid in self.tracks if mid not in by_mid]
        return fresh, ended

    async def accept(
        self,
        sdp: str,
        tracks: Sequence[RelayTrack],
        router_for: Callable[[], Any],
        new_id: Callable[[str], str],
    ) -> tuple[str, list[tuple[ProducerInfo, Any]], list[tuple[ProducerInfo, Any]]]:
        """Answer a (re)offer: returns (answer, producers created, producers to close). The
        lesson's router is only made once the offer is applied."""
        fresh, ended = self.plan(sdp, tracks)
        try:
            answer, incoming = await self.transport.accept_offer(sdp, allow_inactive=True)
        except TransportError as exc:
            raise MediaError(exc.code, exc.message) from exc
        gone = [self.forget(mid) for mid in ended]
        router = router_for() if fresh else None
        created: list[tuple[ProducerInfo, Any]] = []
        for incoming_track in incoming:
            track = fresh.get(incoming_track.mid)
            if track is None:
                continue
            params = incoming_track.params
            info = ProducerInfo(
                id=new_id("p"),
                lesson_id=self.lesson_id,
                peer_id=track.peer_id,
                kind=track.kind,
                source=track.source,
                layer=track.layer,
                mid=track.mid,
                mime_type=params.codec.mime_type,
            )
            try:
                producer = router.create_producer(
                    info.id,
                    info.kind,
                    info.source,
                    info.layer,
                    params,
                    self.transport,
                    group=f"{self.id}/{track.peer_id}/{track.source}",  # a dual stream's pair
                )
            except RouterError as exc:
                raise MediaError(exc.code, exc.message) from exc
            self.transport.attach_producer(producer, params)
            self.tracks[track.mid] = track
            self.producers[track.mid] = (info, producer)
            created.append((info, producer))
        return answer, created, [entry for entry in gone if entry is not None]

    def forget(self, mid: str) -> tuple[ProducerInfo, Any] | None:
        """Stop routing one m-line; the caller closes the returned producer."""
        self.tracks.pop(mid, None)
        entry = self.producers.pop(mid, None)
        if entry is not None:
            self.transport.detach_producer(entry[1])
        return entry

    def origin_ids(self) -> dict[str, ProducerInfo]:
        """Home producer id -> the local producer relaying it."""
        return {self.tracks[mid].producer_id: info for mid, (info, _) in self.producers.items()}

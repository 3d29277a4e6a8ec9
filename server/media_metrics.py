"""The media plane on /metrics: what this node's SFU holds, the packets it could not use, and
each peer's connection quality (the samples the lead and patrol get as ``quality`` events).

Read at scrape time from ``MediaService`` (nothing is mirrored per packet). Per-peer series
carry the lesson, peer, classroom and role (for a peer served here for another node's lesson,
as its home told the media RPC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from media.quality import LEVELS, StreamQuality
from media.sfu import MediaService
from media.transport import TRANSPORT_COUNTERS
from signaling.media_port import PeerInfo

GAUGES = (
    ("lessons", "Lessons with a media router on this node"),
    ("peers", "Peers with a media session on this node"),
    ("producers", "Incoming tracks (producers) on this node"),
    ("consumers", "Outgoing tracks (consumers) to peers on this node"),
    ("transports", "WebRTC transports open on this node (peers' and relays')"),
)
PEER_LABELS = ["lesson", "peer", "classroom", "role"]


PeerLookup = Callable[[str], PeerInfo | None]


class MediaCollector(Collector):
    def __init__(self, service: MediaService, peer_info: PeerLookup) -> None:
        self._service = service
        self._lookups = [peer_info]

    def also_look_up(self, peer_info: PeerLookup) -> None:
        """Another source of peers' roles and classrooms (a cascade edge: the media RPC)."""
        self._lookups.append(peer_info)

    def _peer_info(self, peer_id: str) -> PeerInfo | None:
        for lookup in self._lookups:
            info = lookup(peer_id)
            if info is not None:
                return info
        return None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._service.stats()
        for key, text in GAUGES:
            yield GaugeMetricFamily(f"tongke_media_{key}", text, value=stats.get(key, 0))
        unusable = CounterMetricFamily(
            "tongke_media_packets_unusable",
            "Packets the media plane could not use, by reason (since start)",
            labels=["reason"],
        )
        for reason in TRANSPORT_COUNTERS:
            unusable.add_metric([reason], stats.get(reason, 0))
        yield unusable
        yield from self._quality()

    def _quality(self) -> Iterator[GaugeMetricFamily]:
        directional = [*PEER_LABELS, "direction"]
        loss = GaugeMetricFamily(
            "tongke_peer_loss_ratio",
            "Packet loss of a peer's media, 0-1: up (what it sends us), down (what it gets)",
            labels=directional,
        )
        jitter = GaugeMetricFamily(
            "tongke_peer_jitter_seconds",
            "Interarrival jitter of a peer's media",
            labels=directional,
        )
        rtt = GaugeMetricFamily(
            "tongke_peer_rtt_seconds",
            "Round-trip time to a peer (from its receiver reports)",
            labels=directional,
        )
        bitrate = GaugeMetricFamily(
            "tongke_peer_bitrate_bits_per_second", "A peer's media bitrate", labels=directional
        )
        level = GaugeMetricFamily(
            "tongke_peer_quality_level",
            "A peer's connection quality: 2 good, 1 fair, 0 poor (as the lead's indicator)",
            labels=PEER_LABELS,
        )
        for lesson_id, peer_id, quality in self._service.peer_qualities():
            info = self._peer_info(peer_id)
            labels = [
                lesson_id,
                peer_id,
                (info.classroom_id or "") if info is not None else "",
                info.role.value if info is not None else "",
            ]
            level.add_metric(labels, float(LEVELS.index(quality.level)))
            sides: tuple[tuple[str, StreamQuality], ...] = (
                ("up", quality.upstream),
                ("down", quality.downstream),
            )
            for direction, side in sides:
                if not side.streams:
                    continue
                series = [*labels, direction]
                loss.add_metric(series, side.loss)
                jitter.add_metric(series, side.jitter_ms / 1000.0)
                bitrate.add_metric(series, float(side.bitrate_bps))
                if side.rtt_ms is not None:
                    rtt.add_metric(series, side.rtt_ms / 1000.0)
        yield from (loss, jitter, rtt, bitrate, level)

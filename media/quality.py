"""Per-peer connection quality (loss, jitter, RTT, bitrate) from the RTCP the SFU sees.

Upstream (publisher -> server) comes from the peer's producers: the loss and jitter the
server measured on receive. Downstream (server -> subscriber) comes from the peer's
consumers: the loss, jitter and RTT its receiver reports told. Bitrates are deltas of byte
counters between two samples. ``QualityMeter.sample`` is called about every few seconds by
the media service, which publishes the result as events and Prometheus metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from media.consumer import Consumer, ConsumerStats
from media.producer import Producer

LEVELS = ("poor", "fair", "good")


@dataclass(frozen=True, slots=True)
class StreamQuality:
    """One direction of one peer: loss 0-1, jitter in ms, RTT in ms (None if unknown)."""

    loss: float = 0.0
    jitter_ms: float = 0.0
    rtt_ms: float | None = None
    bitrate_bps: int = 0
    streams: int = 0


@dataclass(frozen=True, slots=True)
class PeerQuality:
    """A peer's upstream and downstream quality and an overall level (good|fair|poor)."""

    upstream: StreamQuality
    downstream: StreamQuality
    level: str


def level_of(q: StreamQuality) -> int:
    """0 poor, 1 fair, 2 good (interactive lesson thresholds: G.114 delay, loss that NACK
    repair no longer hides, jitter a jitter buffer no longer absorbs)."""
    if q.streams == 0:
        return 2
    rtt = q.rtt_ms or 0.0
    if q.loss >= 0.08 or rtt >= 400 or q.jitter_ms >= 100:
        return 0
    if q.loss >= 0.02 or rtt >= 250 or q.jitter_ms >= 40:
        return 1
    return 2


class QualityMeter:
    """Samples one peer's producers and consumers; keeps the counters for bitrate deltas."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._bytes_in = 0
        self._bytes_out = 0
        # Per consumer: (cumulative lost, extended highest seq) of the last report seen.
        self._reports: dict[str, tuple[int, int]] = {}
        self.last: PeerQuality | None = None  # the latest sample (metrics read it)

    def sample(
        self, now_ms: int, producers: Iterable[Producer], consumers: Iterable[Consumer]
    ) -> PeerQuality:
        up_streams = [p.stats() for p in producers if not p.closed]
        open_consumers = [c for c in consumers if not c.closed]
        down = [c.stats() for c in open_consumers]
        last, self._reports = self._reports, {}  # closed consumers are forgotten
        down_loss = [
            self._interval_loss(c.id, s, last.get(c.id))
            for c, s in zip(open_consumers, down, strict=True)
        ]
        bytes_in = sum(s.bytes_received for s in up_streams)
        bytes_out = sum(s.bytes_sent for s in down)
        rate_in = rate_out = 0
        if self._last_ms >= 0 and now_ms > self._last_ms:
            elapsed = now_ms - self._last_ms
            rate_in = max(0, bytes_in - self._bytes_in) * 8000 // elapsed
            rate_out = max(0, bytes_out - self._bytes_out) * 8000 // elapsed
        self._last_ms, self._bytes_in, self._bytes_out = now_ms, bytes_in, bytes_out
        upstream = StreamQuality(
            loss=max((s.fraction_lost for s in up_streams), default=0.0),
            jitter_ms=max((s.jitter_ms for s in up_streams), default=0.0),
            bitrate_bps=rate_in,
            streams=len(up_streams),
        )
        rtts = [s.rtt_ms for s in down if s.rtt_ms is not None]
        downstream = StreamQuality(
            loss=max(down_loss, default=0.0),
            jitter_ms=max((s.jitter_ms for s in down), default=0.0),
            rtt_ms=max(rtts) if rtts else None,
            bitrate_bps=rate_out,
            streams=len(down),
        )
        level = LEVELS[min(level_of(upstream), level_of(downstream))]
        self.last = PeerQuality(upstream, downstream, level)
        return self.last

    def _interval_loss(
        self, consumer_id: str, stats: ConsumerStats, last: tuple[int, int] | None
    ) -> float:
        """The loss over every report since the last sample, from the reports' cumulative
        counters; a burst then a clean report (a capped link the SFU already moved to the
        low layer) still shows. With no new report, the last report's fraction."""
        now = (stats.packets_lost, stats.highest_sequence)
        self._reports[consumer_id] = now
        if last is None:
            return stats.fraction_lost
        expected = (now[1] - last[1]) & 0xFFFFFFFF
        if expected == 0 or expected >= 0x80000000:
            return stats.fraction_lost
        lost = max(0, now[0] - last[0])
        return min(1.0, lost / expected)

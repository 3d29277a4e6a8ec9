"""Consumers: one outgoing copy of a producer to one subscriber.

Contract (mediasoup's Consumer.hpp): ``send_rtp(packet)`` (hot path, a plain ``def``),
``receive_nack(seqs)``, ``receive_key_frame_request()``, ``receive_remb(bitrate_bps)``,
``receive_receiver_report(block)``, ``get_rtcp(now_ms) -> list[bytes]`` (SR + SDES).

Each consumer owns its outgoing ``RtpParameters`` (the subscriber side's SSRC, payload
type, RTX and extension ids) and rewrites SSRC, payload type, sequence number, timestamp and
header extensions of every packet; the shared packet is never mutated. A ``sync_required``
gate holds video back until a keyframe (audio: any packet). Sequence numbers and
timestamps stay continuous across pauses and layer switches: each (re)start continues from
the last packet sent, so the subscriber sees no gap and no duplicate.

``SimpleConsumer`` (here) forwards one producer; ``LayeredConsumer`` (media/layers.py, next
to its selector) forwards one of a main/low pair, switching only at a keyframe.
Both send through an ``RtpSink`` (sync; the transport protects with SRTP and sends).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from media.codecs import ExtensionRewriter, RtpParameters, extension_rewriter
from media.events import EventEmitter, monotonic_ms
from media.producer import Producer
from media.rtcp import (
    RtcpReportBlock,
    RtcpSdesChunk,
    RtcpSdesPacket,
    RtcpSrPacket,
    ntp_from_ms,
    ntp_middle32,
)
from media.rtp import RTP_HEADER, RtpPacket, pack_rtp

logger = logging.getLogger(__name__)

GUARD_PACKETS = 1000  # after a (re)sync, older packets than the sync point are dropped
SEGMENTS_KEPT = 4  # seq/ts mappings remembered for answering NACKs across switches
RESTART_GAP = 3000  # a keyframe this far behind the last packet sent starts a new segment
# A packet is resent at most once per RTT (this floor on loopback; the default before the
# first RTT is known): receivers that repeat their whole NACK list on every new gap (aiortc
# does) would otherwise turn a congested link into a retransmission storm.
RESEND_RING = 512
RESEND_MIN_INTERVAL_MS = 50
RESEND_DEFAULT_INTERVAL_MS = 100
# A subscriber's loss report older than this no longer describes its link (it left, or its
# reports stopped): it stops counting toward what the publisher is told (Producer).
REPORT_FRESH_MS = 5000


class Segment(NamedTuple):
    """A run of outgoing packets from one anchor: how its sequence numbers map back."""

    start: int  # first outgoing sequence number
    producer: Producer
    seq_offset: int
    ts_offset: int
    rewriter: ExtensionRewriter
    pid_offset: int = 0  # VP8 picture id / TL0PICIDX shifts (layered consumers)
    tl0_offset: int = 0


class RtpSink(Protocol):
    """Where a consumer writes (the receive transport: SRTP-protects and sends, sync)."""

    def send_rtp(self, data: bytes) -> None: ...

    def send_rtcp(self, data: bytes) -> None: ...


class NullSink:
    """Swallows everything (a consumer whose transport is gone, tests)."""

    def send_rtp(self, data: bytes) -> None:
        pass

    def send_rtcp(self, data: bytes) -> None:
        pass


class ConsumerListener(Protocol):
    """What a consumer reports to its owner (the Router)."""

    def on_consumer_closed(self, consumer: Consumer) -> None: ...


@dataclass(slots=True)
class ConsumerStats:
    """Send-side counters and the subscriber's view from its receiver reports."""

    packets_sent: int = 0
    bytes_sent: int = 0
    packets_retransmitted: int = 0
    nacks_received: int = 0
    nack_misses: int = 0
    nacks_throttled: int = 0  # asked again within an RTT of the last resend: not resent
    # Asked again after the resend interval for a packet already resent: that retransmission
    # was lost or late (media/residual_loss.py reads the loss repair left from it).
    nacks_repeated: int = 0
    probe_packets: int = 0  # RTX copies sent to probe the link's room (media/layers.py)
    nacks_shed: int = 0  # NACK packets not answered while the layer being left is shed
    key_frame_requests_received: int = 0
    fraction_lost: float = 0.0
    packets_lost: int = 0  # cumulative, from the last receiver report
    highest_sequence: int = 0  # extended highest sequence number of that report
    jitter_ms: float = 0.0
    rtt_ms: float | None = None
    remb_bps: int | None = None
    layer: str | None = None
    layer_switches: int = 0


class Consumer:
    """Common state and RTCP of both consumer kinds; subclasses implement ``send_rtp``."""

    def __init__(
        self,
        consumer_id: str,
        producer: Producer,
        params: RtpParameters,
        sink: RtpSink,
        listener: ConsumerListener,
        *,
        clock: Callable[[], int] = monotonic_ms,
        wall_offset_ms: int = 0,
        paused: bool = False,
    ) -> None:
        problem = self.mismatch(params, producer)
        if problem:
            raise ValueError(problem)
        self.id = consumer_id
        self.kind = producer.kind
        self.producer_id = producer.id
        self.params = params
        self.events = EventEmitter()
        self._producer = producer
        self._sink = sink
        self._listener = listener
        self._clock = clock
        self._wall_offset_ms = wall_offset_ms
        self._closed = False
        self._paused = paused
        self._active = not paused
        self._ssrc = params.ssrc
        self._pt = params.codec.payload_type
        self._marker_pt = (self._pt, 0x80 | self._pt)  # indexed by the marker bit
        self._pts = frozenset({producer.params.codec.payload_type})
        self._clock_rate = params.codec.clock_rate
        self._rtx = params.rtx_enabled
        self._rtx_ssrc = params.rtx_ssrc or 0
        self._rtx_pt = params.codec.rtx_payload_type or 0
        self._rtx_seq = 0
        self._rewriter = extension_rewriter(producer.params, params)
        self._stats = ConsumerStats()
        # Munging state: out = in + offset (mod 2**16 / 2**32) within one segment.
        self._sync_required = True
        self._seq_offset = 0
        self._ts_offset = 0
        self._started = False
        self._max_seq = 0  # highest outgoing seq sent
        self._max_ts = 0  # outgoing ts of that packet
        self._max_arrival_ms = 0  # its arrival time at the server
        self._max_packet: RtpPacket | None = None  # and the packet itself
        self._guard = 0
        self._guard_seq = 0
        self._segments: list[Segment] = []  # newest last
        self._last_sr: tuple[int, int] | None = None  # (compact NTP, now_ms) of our last SR
        self._reported = (0, -REPORT_FRESH_MS)  # (fraction_lost 0-255, when) of the last RR
        # When each outgoing seq was last resent (a ring by seq; see RESEND_RING), made at
        # the first NACK: most consumers (audio, clean links) never need its 8 KB.
        self._resent_seq: list[int] = []
        self._resent_at: list[int] = []

    @staticmethod
    def mismatch(params: RtpParameters, producer: Producer) -> str:
        """Why ``producer`` cannot be forwarded with ``params`` (no transcoding); "" if it can."""
        ours, theirs = params.codec, producer.params.codec
        if ours.kind != producer.kind:
            return f"consumer codec {ours.mime_type} does not match producer kind {producer.kind}."
        if ours.mime_type.lower() != theirs.mime_type.lower():
            return (
                f"consumer codec {ours.mime_type} differs from producer codec {theirs.mime_type}."
            )
        if ours.clock_rate != theirs.clock_rate:
            return (
                f"consumer clock rate {ours.clock_rate} differs from producer's "
                f"{theirs.clock_rate}."
            )
        return ""

    def accepts(self, producer: Producer) -> bool:
        """True when ``producer``'s packets can go out with this consumer's parameters."""
        return not self.mismatch(self.params, producer)

    # -- identity and state ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def producer(self) -> Producer:
        """The producer being forwarded now (for a layered consumer, the current layer's)."""
        return self._producer

    @property
    def producers(self) -> tuple[Producer, ...]:
        """Every producer this consumer takes packets from."""
        return (self._producer,)

    def pause(self) -> None:
        """Stop sending (a muted receiver's audio to the lead, an off-screen tile)."""
        self._paused = True
        self._active = False

    def resume(self) -> None:
        """Send again, from the next keyframe (audio: the next packet), seamlessly."""
        if self._closed or not self._paused:
            return
        self._paused = False
        self._sync_required = True
        self._restart()
        self._active = True
        self.request_key_frame()

    def set_preferred_layer(self, name: str) -> None:
        """Single-layer consumers have nothing to choose (LayeredConsumer overrides this)."""

    @property
    def current_layer(self) -> str | None:
        """The layer being forwarded; a single-layer consumer forwards "main"."""
        return "main"

    def _restart(self) -> None:
        """Subclass hook: forget the current sync so the next keyframe re-anchors."""

    # -- hot path ---------------------------------------------------------------------

    def send_rtp(self, packet: RtpPacket) -> None:
        raise NotImplementedError

    def _anchor(self, packet: RtpPacket, producer: Producer) -> None:
        """Start a new segment at ``packet``: its copy continues right after the last sent."""
        if not self._started:
            seq_offset = 0
            ts_offset = 0
            self._started = True
        else:
            seq_offset = (self._max_seq + 1 - packet.sequence_number) & 0xFFFF
            delta = self._ts_delta(packet, producer)
            ts_offset = (self._max_ts + delta - packet.timestamp) & 0xFFFFFFFF
        self._seq_offset = seq_offset
        self._ts_offset = ts_offset
        out_seq = (packet.sequence_number + seq_offset) & 0xFFFF
        self._max_seq = (out_seq - 1) & 0xFFFF
        pid_offset, tl0_offset = self._anchor_ids(packet)
        self._segments.append(
            Segment(
                out_seq, producer, seq_offset, ts_offset, self._rewriter, pid_offset, tl0_offset
            )
        )
        del self._segments[:-SEGMENTS_KEPT]
        self._producer = producer
        self._guard = GUARD_PACKETS
        self._guard_seq = packet.sequence_number
        self._sync_required = False

    def _ts_delta(self, packet: RtpPacket, producer: Producer) -> int:
        """Outgoing timestamp distance from the last sent packet to ``packet`` (> 0).

        Media time when both streams' sender reports relate them (same capture clock),
        else the arrival time between the two packets; at least 1 ms of clock.
        """
        minimum = max(1, self._clock_rate // 1000)
        old = self._producer
        if old is not producer:
            mapped = old.map_timestamp(packet.timestamp, producer)
            if mapped is not None:
                last_in = (self._max_ts - self._ts_offset) & 0xFFFFFFFF
                d = (mapped - last_in) & 0xFFFFFFFF
                if d < 0x80000000 and d >= minimum:
                    return d
        elapsed = packet.arrival_ms - self._max_arrival_ms
        return max(minimum, elapsed * self._clock_rate // 1000)

    def _write(self, packet: RtpPacket) -> None:
        """Rewrite ``packet`` for this subscriber and send it (the segment is anchored)."""
        seq = packet.sequence_number
        behind = (self._max_seq - self._seq_offset - seq) & 0xFFFF
        if RESTART_GAP < behind < 0x8000:  # far behind: the publisher restarted its numbering
            if not packet.keyframe:
                return
            self._anchor(packet, self._producer)
        if self._guard:
            self._guard -= 1
            if (seq - self._guard_seq) & 0xFFFF >= 0x8000:
                return  # older than the sync point: the subscriber never saw its segment
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        b0, tail = self._tail(packet)
        data = (
            RTP_HEADER.pack(b0, self._marker_pt[packet.marker], out_seq, out_ts, self._ssrc) + tail
        )
        self._sink.send_rtp(data)
        stats = self._stats
        stats.packets_sent += 1
        stats.bytes_sent += len(packet.payload)
        if (out_seq - self._max_seq) & 0xFFFF < 0x8000:
            self._max_seq = out_seq
            self._max_ts = out_ts
            self._max_arrival_ms = packet.arrival_ms
            self._max_packet = packet

    def _tail(self, packet: RtpPacket) -> tuple[int, bytes]:
        """First byte and bytes after the fixed header of this subscriber's copy."""
        return self._rewriter.tail(packet)

    def _anchor_ids(self, packet: RtpPacket) -> tuple[int, int]:
        """Codec id shifts for a new segment (LayeredConsumer keeps VP8 ids continuous)."""
        return 0, 0

    def _payload_of(self, packet: RtpPacket, segment: Segment) -> bytes:
        """The payload as this subscriber got it in ``segment`` (for retransmission)."""
        return packet.payload

    # -- RTCP from the subscriber -----------------------------------------------------

    def receive_nack(self, seqs: Iterable[int]) -> None:
        """Resend the asked-for packets from the producers' buffers (RTX when negotiated)."""
        if self._closed or not self._started:
            return
        if self._shedding():
            self._stats.nacks_shed += 1
            return
        now = self._clock()
        stats = self._stats
        rtt = stats.rtt_ms
        interval = (
            max(RESEND_MIN_INTERVAL_MS, rtt) if rtt is not None else RESEND_DEFAULT_INTERVAL_MS
        )
        if not self._resent_seq:
            self._resent_seq, self._resent_at = [-1] * RESEND_RING, [0] * RESEND_RING
        resent_seq, resent_at = self._resent_seq, self._resent_at
        for out_seq in seqs:
            stats.nacks_received += 1
            slot = out_seq % RESEND_RING
            if resent_seq[slot] == out_seq:
                if now - resent_at[slot] < interval:
                    stats.nacks_throttled += 1
                    continue
                stats.nacks_repeated += 1
            if not self._resend(out_seq, now):
                stats.nack_misses += 1
                continue
            stats.packets_retransmitted += 1
            resent_seq[slot] = out_seq
            resent_at[slot] = now

    def _resend(self, out_seq: int, now_ms: int) -> int:
        """Send outgoing ``out_seq`` again (on RTX when negotiated): its size, 0 when it is
        no longer held (or was never sent)."""
        packet, seg = self._find(out_seq, now_ms)
        if packet is None or seg is None:
            return 0
        ts = (packet.timestamp + seg.ts_offset) & 0xFFFFFFFF
        profile, body = seg.rewriter.rewrite(packet, now_ms)
        payload = self._payload_of(packet, seg)
        if self._rtx:
            payload = out_seq.to_bytes(2, "big") + payload
            seq, ssrc, pt = self._rtx_seq, self._rtx_ssrc, self._rtx_pt
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        else:
            seq, ssrc, pt = out_seq, self._ssrc, self._pt
        data = pack_rtp(packet.marker, pt, seq, ts, ssrc, payload, packet.csrc, profile, body, 0)
        self._sink.send_rtp(data)
        return len(data)

    def _shedding(self) -> bool:
        """Subclass hook: the link cannot carry what is being sent (LayeredConsumer)."""
        return False

    def _find(self, out_seq: int, now_ms: int) -> tuple[RtpPacket | None, Segment | None]:
        ahead = (out_seq - self._max_seq) & 0xFFFF
        if 0 < ahead < 0x8000:
            return None, None  # never sent
        for seg in reversed(self._segments):
            if (out_seq - seg.start) & 0xFFFF < 0x8000:
                return seg.producer.buffer.get((out_seq - seg.seq_offset) & 0xFFFF, now_ms), seg
        return None, None

    def receive_key_frame_request(self) -> None:
        """The subscriber sent PLI/FIR: ask the producer being forwarded (rate limited)."""
        if self._closed:
            return
        self._stats.key_frame_requests_received += 1
        self.request_key_frame()

    def request_key_frame(self) -> None:
        """Ask the producer being forwarded (or about to be) for a keyframe, rate limited."""
        self._producer.request_key_frame()

    def receive_remb(self, bitrate_bps: int) -> None:
        """The subscriber's estimate of the bandwidth it can receive."""
        self._stats.remb_bps = bitrate_bps

    def receive_receiver_report(self, block: RtcpReportBlock) -> None:
        """The subscriber's report about our SSRC: loss, jitter and RTT (from our last SR).

        A block about our RTX SSRC is ignored: its loss is that of a handful of
        retransmissions (one lost of seven reads 14 %), not the stream's."""
        if block.ssrc != self._ssrc:
            return
        stats = self._stats
        stats.fraction_lost = block.fraction_lost / 256
        self._reported = (block.fraction_lost, self._clock())
        stats.packets_lost = block.packets_lost
        stats.highest_sequence = block.highest_sequence
        stats.jitter_ms = block.jitter * 1000 / self._clock_rate
        if block.lsr and self._last_sr is not None:
            now = ntp_middle32(ntp_from_ms(self._clock() + self._wall_offset_ms))
            rtt = (now - block.lsr - block.dlsr) & 0xFFFFFFFF
            if rtt < 0x80000000:
                stats.rtt_ms = rtt * 1000 / 65536

    def reported_fraction_lost(self, now_ms: int) -> int:
        """The subscriber's last ``fraction_lost`` (0-255) of this stream, 0 once stale."""
        fraction, at = self._reported
        return fraction if now_ms - at < REPORT_FRESH_MS and not self._paused else 0

    def get_rtcp(self, now_ms: int) -> list[bytes]:
        """Our sender report and SDES CNAME for this stream; empty before the first packet."""
        if self._closed or not self._started:
            return []
        in_ts = self._producer.rtp_timestamp_at(now_ms)
        if in_ts is None:
            return []
        ntp = ntp_from_ms(now_ms + self._wall_offset_ms)
        self._last_sr = (ntp_middle32(ntp), now_ms)
        stats = self._stats
        sr = RtcpSrPacket(
            ssrc=self._ssrc,
            ntp_timestamp=ntp,
            rtp_timestamp=(in_ts + self._ts_offset) & 0xFFFFFFFF,
            packet_count=stats.packets_sent & 0xFFFFFFFF,
            octet_count=stats.bytes_sent & 0xFFFFFFFF,
        )
        sdes = RtcpSdesPacket([RtcpSdesChunk(self._ssrc, [(1, self.params.cname.encode())])])
        return [bytes(sr), bytes(sdes)]

    def stats(self) -> ConsumerStats:
        """A copy of the counters."""
        s = self._stats
        return ConsumerStats(**{k: getattr(s, k) for k in s.__slots__})

    # -- lifecycle --------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        """Close (idempotent); the router forgets it."""
        if self._close(reason):
            self._listener.on_consumer_closed(self)

    def producer_closed(self, producer: Producer) -> None:
        """One of its producers closed (the router already dropped this consumer from it)."""
        self._close("producer_closed")

    def router_closed(self) -> None:
        self._close("router_closed")

    def transport_closed(self) -> None:
        """Its transport closed: the router must forget it too."""
        self.close("transport_closed")

    def _close(self, reason: str) -> bool:
        if self._closed:
            return False
        self._closed = True
        self._active = False
        self._sink = NullSink()
        self.events.emit("closed", reason)
        self.events.remove_all_listeners()
        return True


class SimpleConsumer(Consumer):
    """Forwards one producer (audio, or video without a low layer)."""

    def send_rtp(self, packet: RtpPacket) -> None:
        if not self._active or packet.payload_type not in self._pts:
            return
        if self._sync_required:
            if not packet.keyframe:
                return
            self._anchor(packet, self._producer)
        self._write(packet)

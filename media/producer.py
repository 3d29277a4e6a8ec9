"""Producer: one incoming track of a peer (kind, source camera|board|screen|mic, layer).

The transport parses every RTP packet of this producer's SSRC (or RTX SSRC) and calls
``receive_rtp(packet, arrival_ms)``: the producer unwraps RTX, drops duplicates, updates
its receive statistics, NACK generator and keyframe state, stores the packet in its
``RetransmissionBuffer`` and hands it to its listener (the Router) for fan-out. Upstream
RTCP (NACK, PLI/FIR, RR, REMB) leaves through ``RtcpSink.send_rtcp`` (sync).

All times are ``monotonic_ms()`` milliseconds (media/events.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from media.audio_level import AudioLevelObserver, NullAudioLevelObserver
from media.codecs import AUDIO_LEVEL, RtpParameters
from media.events import EventEmitter, monotonic_ms
from media.keyframe import KeyFrameRequester
from media.nack import NackGenerator
from media.retransmission import RetransmissionBuffer
from media.rtcp import (
    RtcpFirPacket,
    RtcpNackPacket,
    RtcpPliPacket,
    RtcpRembPacket,
    RtcpReportBlock,
    RtcpRrPacket,
    RtcpSrPacket,
    ntp_middle32,
)
from media.rtp import RtpPacket, keyframe_detector, unwrap_rtx

logger = logging.getLogger(__name__)

TICK_MS = 20  # NACK retries and held keyframe requests are checked at most this often
MAX_DROPOUT = 3000  # RFC 3550 A.1: a larger forward step is a jump ...
SEQ_JUMP_END = 0x10000 - 100  # ... and so is a step back of more than 100 (MAX_MISORDER)
DEFAULT_RTT_MS = 100  # NACK retry spacing until the transport tells the publisher's RTT


class RtcpSink(Protocol):
    """Where a producer writes RTCP for its publisher (the send transport)."""

    def send_rtcp(self, data: bytes) -> None: ...


class NullRtcpSink:
    """Swallows RTCP (a producer whose transport is gone, tests)."""

    def send_rtcp(self, data: bytes) -> None:
        pass


class ProducerListener(Protocol):
    """What a producer reports to its owner (the Router)."""

    def on_producer_rtp(self, producer: Producer, packet: RtpPacket) -> None: ...

    def on_producer_closed(self, producer: Producer) -> None: ...


@dataclass(slots=True)
class ProducerStats:
    """Receive-side counters of one producer (cumulative since creation)."""

    packets_received: int = 0
    bytes_received: int = 0
    packets_lost: int = 0
    fraction_lost: float = 0.0
    jitter_ms: float = 0.0
    packets_retransmitted: int = 0
    packets_duplicated: int = 0
    packets_discarded: int = 0
    nacks_sent: int = 0
    key_frames_received: int = 0
    key_frame_requests_received: int = 0
    key_frame_requests_sent: int = 0


class Producer:
    """One incoming RTP stream. Usually made by ``Router.create_producer``."""

    def __init__(
        self,
        producer_id: str,
        kind: str,
        source: str,
        layer: str,
        params: RtpParameters,
        listener: ProducerListener,
        rtcp_sink: RtcpSink,
        *,
        group: str = "",
        clock: Callable[[], int] = monotonic_ms,
        report_ssrc: int = 1,
        max_incoming_bitrate: int = 3_000_000,
        audio_levels: AudioLevelObserver | NullAudioLevelObserver | None = None,
        key_frame_interval_ms: int = 500,
        downstream_loss: Callable[[Producer, int], int] | None = None,
    ) -> None:
        if kind not in ("audio", "video"):
            raise ValueError(f"producer kind must be audio or video, not {kind!r}.")
        if params.codec.kind != kind:
            raise ValueError(f"producer kind {kind} does not match codec {params.codec.mime_type}.")
        self.id = producer_id
        self.kind = kind
        self.source = source
        self.layer = layer
        self.group = group
        self.params = params
        self.events = EventEmitter()
        self._listener = listener
        self._sink = rtcp_sink
        self._clock = clock
        self._report_ssrc = report_ssrc
        self._closed = False
        codec = params.codec
        self._ssrc = params.ssrc
        self._pt = codec.payload_type
        self._rtx_ssrc = params.rtx_ssrc if params.rtx_enabled else -1
        self._rtx_pt = codec.rtx_payload_type
        self._clock_rate = codec.clock_rate
        self._is_keyframe = keyframe_detector(codec.mime_type)
        # Video is cached for subscribers' NACKs even when the publisher cannot be NACKed.
        self._buffered = kind == "video"
        self._nack_enabled = self._buffered and codec.has_feedback("nack")
        self._remb_bitrate = max_incoming_bitrate if codec.has_feedback("goog-remb") else 0
        self._use_fir = not codec.has_feedback("nack pli") and codec.has_feedback("ccm fir")
        self._fir_seq = 0
        self._level_id = params.extension_id(AUDIO_LEVEL) if kind == "audio" else 0
        self._levels = audio_levels or NullAudioLevelObserver()
        # Audio only: the worst loss (0-255) subscribers report of this stream, so that the
        # publisher's Opus encoder protects against the loss of the whole path (in-band FEC
        # follows the loss in our receiver reports). Video is repaired by NACK at the SFU and
        # must not make the publisher's encoder back off for one lossy classroom.
        self._downstream_loss = downstream_loss if kind == "audio" else None
        self.buffer = RetransmissionBuffer()
        self.nack = NackGenerator()
        self.key_frames = KeyFrameRequester(
            self._send_key_frame_request, min_interval_ms=key_frame_interval_ms
        )
        self._stats = ProducerStats()
        self._last_tick_ms = 0
        # RFC 3550 A.1/A.3/A.8 receive state.
        self._base_seq = -1
        self._max_ext = -1
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._bad_seq = -1
        self.stream_restarts = 0
        self._transit: float | None = None
        self._jitter = 0.0
        self._last_ts = 0
        self._last_ts_ms = -1
        # Sender report mapping: (NTP, RTP, arrival_ms) of the last SR.
        self._sr: tuple[int, int, int] | None = None
        self._paused = False
        self.rtt_ms = DEFAULT_RTT_MS
        self._rate_sample = (-1, 0)
        self._rate_bps = 0

    # -- identity ---------------------------------------------------------------------

    @property
    def ssrc(self) -> int:
        return self._ssrc

    @property
    def rtx_ssrc(self) -> int | None:
        return self.params.rtx_ssrc

    def bind_ssrc(self, ssrc: int) -> None:
        """The publisher's m-line had no ``a=ssrc`` (``params.ssrc`` 0): the transport found
        this stream's first packet (by MID or payload type) and names its SSRC. Emits
        ``ssrc_bound`` once."""
        if self._ssrc:
            return
        self._ssrc = ssrc
        self.params = replace(self.params, ssrc=ssrc)
        self.events.emit("ssrc_bound", ssrc)

    def bind_rtx_ssrc(self, ssrc: int) -> None:
        """As :meth:`bind_ssrc` for the RTX stream (no ``a=ssrc-group:FID`` was announced)."""
        if self.params.rtx_ssrc or self._rtx_pt is None:
            return
        self.params = replace(self.params, rtx_ssrc=ssrc)
        self._rtx_ssrc = ssrc

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def paused(self) -> bool:
        """A paused producer drops incoming packets (e.g. a muted microphone)."""
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self.request_key_frame()

    # -- hot path ---------------------------------------------------------------------

    def receive_rtp(self, packet: RtpPacket, arrival_ms: int) -> None:
        """Account for one incoming packet (media or RTX) and fan it out."""
        if self._closed:
            return
        stats = self._stats
        recovered = False
        if packet.ssrc != self._ssrc:
            if packet.ssrc != self._rtx_ssrc or packet.payload_type != self._rtx_pt:
                stats.packets_discarded += 1
                return
            try:
                packet = unwrap_rtx(packet, self._pt, self._ssrc)
            except ValueError:  # padding-only RTX (bandwidth probing)
                return
            recovered = True
            stats.packets_retransmitted += 1
        elif packet.payload_type != self._pt:
            stats.packets_discarded += 1
            return
        seq = packet.sequence_number
        if self._buffered and self.buffer.get(seq, arrival_ms) is not None:
            stats.packets_duplicated += 1
            return
        stats.packets_received += 1
        stats.bytes_received += len(packet.payload)
        if self._base_seq >= 0 and MAX_DROPOUT <= (seq - self._max_ext) & 0xFFFF <= SEQ_JUMP_END:
            # RFC 3550 A.1: a jump is believed (stream restart) once the next packet follows it.
            if seq == self._bad_seq:
                self._restart_stream()
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                seq = -1  # forwarded, but kept out of loss accounting and NACK
        if seq >= 0:
            if self._nack_enabled:
                gaps = self.nack.receive(seq, arrival_ms, recovered)
                if gaps:
                    self._sink.send_rtcp(bytes(RtcpNackPacket(self._report_ssrc, self._ssrc, gaps)))
            self._update_receive_state(packet, arrival_ms, recovered)
        seq = packet.sequence_number
        packet.arrival_ms = arrival_ms
        if self._is_keyframe(packet.payload):
            packet.keyframe = True
            stats.key_frames_received += 1
            self.key_frames.key_frame_received()
            if self._nack_enabled:
                self.nack.key_frame_received(seq)
        if self._buffered:
            self.buffer.store(packet, arrival_ms)
        if self._level_id:
            value = packet.get_extension(self._level_id)
            if value:
                self._levels.add(self.id, value[0] & 0x7F, arrival_ms)
        if arrival_ms - self._last_tick_ms >= TICK_MS:
            self._tick(arrival_ms)
        if not self._paused:
            self._listener.on_producer_rtp(self, packet)

    def _restart_stream(self) -> None:
        """The publisher restarted its sequence numbers: start loss accounting afresh."""
        self._base_seq = -1
        self._max_ext = -1
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._transit = None
        self.nack.reset()
        self.stream_restarts += 1
        self.request_key_frame()  # whatever was lost in between cannot be repaired

    def _update_receive_state(self, packet: RtpPacket, arrival_ms: int, recovered: bool) -> None:
        seq = packet.sequence_number
        self._received += 1
        if self._base_seq < 0:
            self._base_seq = seq
            self._max_ext = seq
        else:
            d = (seq - self._max_ext) & 0xFFFF
            if d < 0x8000:
                if d and seq < (self._max_ext & 0xFFFF):
                    self._cycles += 0x10000
                self._max_ext = self._cycles | seq
            else:
                return  # an older packet (late or recovered): no jitter or clock update
        if recovered:
            return
        transit = arrival_ms * self._clock_rate / 1000 - packet.timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 0x7FFFFFFF:  # ignore timestamp jumps
                self._jitter += (d - self._jitter) / 16
        self._transit = transit
        self._last_ts = packet.timestamp
        self._last_ts_ms = arrival_ms

    # -- RTCP -------------------------------------------------------------------------

    def receive_sender_report(self, report: RtcpSrPacket, arrival_ms: int) -> None:
        """Remember the publisher's NTP/RTP mapping (for consumers' SRs and our RR's LSR)."""
        self._sr = (report.ntp_timestamp, report.rtp_timestamp, arrival_ms)

    def rtp_timestamp_at(self, now_ms: int) -> int | None:
        """This stream's RTP timestamp for wall time ``now_ms``, or None before any packet.

        Derived from the publisher's last SR when one arrived (keeps its audio and video in
        sync), else from the arrival clock of the newest packet.
        """
        if self._sr is not None:
            _, rtp, at = self._sr
        elif self._last_ts_ms >= 0:
            rtp, at = self._last_ts, self._last_ts_ms
        else:
            return None
        return (rtp + (now_ms - at) * self._clock_rate // 1000) & 0xFFFFFFFF

    def map_timestamp(self, timestamp: int, other: Producer) -> int | None:
        """``other``'s RTP ``timestamp`` on this stream's RTP timeline, when both streams'
        sender reports relate them to the publisher's NTP clock; else None."""
        if self._sr is None or other._sr is None:
            return None
        ntp_self, rtp_self, _ = self._sr
        ntp_other, rtp_other, _ = other._sr
        other_delta = (timestamp - rtp_other) & 0xFFFFFFFF
        if other_delta >= 0x80000000:
            other_delta -= 0x100000000
        seconds = (ntp_other - ntp_self) / (1 << 32) + other_delta / other._clock_rate
        return (rtp_self + round(seconds * self._clock_rate)) & 0xFFFFFFFF

    def bitrate_bps(self, now_ms: int) -> int:
        """Incoming payload bitrate over the last ~second (sampled when asked)."""
        bytes_now = self._stats.bytes_received
        last_ms, last_bytes = self._rate_sample
        elapsed = now_ms - last_ms
        if last_ms < 0:
            self._rate_sample = (now_ms, bytes_now)
        elif elapsed >= 500:
            self._rate_bps = (bytes_now - last_bytes) * 8000 // elapsed
            self._rate_sample = (now_ms, bytes_now)
        return self._rate_bps

    def set_rtt(self, rtt_ms: float) -> None:
        """The publisher's round-trip time (e.g. from its receive transport's reports): NACKs
        for a packet are repeated no faster than this."""
        self.rtt_ms = max(0.0, rtt_ms)

    def request_key_frame(self) -> None:
        """A consumer needs a keyframe: one PLI/FIR upstream, aggregated and rate limited."""
        if self._closed or self.kind != "video":
            return
        self._stats.key_frame_requests_received += 1
        self.key_frames.request(self._clock())

    def _send_key_frame_request(self) -> None:
        if not self._ssrc:  # no packet yet from an m-line without a=ssrc: nothing to name
            return
        if self._use_fir:
            self._fir_seq = (self._fir_seq + 1) & 0xFF
            data = bytes(RtcpFirPacket(self._report_ssrc, [(self._ssrc, self._fir_seq)]))
        else:
            data = bytes(RtcpPliPacket(self._report_ssrc, self._ssrc))
        self._sink.send_rtcp(data)

    def _tick(self, now_ms: int) -> None:
        self._last_tick_ms = now_ms
        if self._nack_enabled:
            again = self.nack.due(now_ms, self.rtt_ms)
            if again:
                self._sink.send_rtcp(bytes(RtcpNackPacket(self._report_ssrc, self._ssrc, again)))
            if self.nack.key_frame_required:
                self.nack.key_frame_required = False
                self.request_key_frame()
        self.key_frames.poll(now_ms)

    def get_rtcp(self, now_ms: int) -> list[bytes]:
        """Periodic upstream RTCP (about once a second): RR, then REMB when negotiated."""
        if self._closed:
            return []
        self._tick(now_ms)
        if self._base_seq < 0:
            return []
        out = [bytes(RtcpRrPacket(self._report_ssrc, [self.report_block(now_ms)]))]
        if self._remb_bitrate:
            out.append(bytes(RtcpRembPacket(self._report_ssrc, self._remb_bitrate, [self._ssrc])))
        return out

    def report_block(self, now_ms: int) -> RtcpReportBlock:
        """The RFC 3550 report block for this stream, closing the current interval."""
        expected = self._max_ext - self._base_seq + 1
        lost = expected - self._received
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        self._stats.fraction_lost = fraction / 256
        if self._downstream_loss is not None:
            fraction = max(fraction, self._downstream_loss(self, now_ms))
        lost = max(-0x800000, min(lost, 0x7FFFFF))
        lsr = dlsr = 0
        if self._sr is not None:
            lsr = ntp_middle32(self._sr[0])
            dlsr = (now_ms - self._sr[2]) * 65536 // 1000
        return RtcpReportBlock(
            ssrc=self._ssrc,
            fraction_lost=fraction,
            packets_lost=lost,
            highest_sequence=self._max_ext & 0xFFFFFFFF,
            jitter=int(self._jitter),
            lsr=lsr,
            dlsr=dlsr,
        )

    def stats(self) -> ProducerStats:
        """A copy of the counters, with loss, jitter and NACK figures brought up to date."""
        s = self._stats
        expected = self._max_ext - self._base_seq + 1 if self._base_seq >= 0 else 0
        s.packets_lost = max(0, expected - self._received)
        s.jitter_ms = self._jitter * 1000 / self._clock_rate
        s.nacks_sent = self.nack.nacks_sent
        s.key_frame_requests_sent = self.key_frames.requests_sent
        return ProducerStats(**{k: getattr(s, k) for k in s.__slots__})

    # -- lifecycle --------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        """Close (idempotent): the router drops it and closes its consumers."""
        if self._close(reason):
            self._listener.on_producer_closed(self)

    def router_closed(self) -> None:
        """Closed because its router closed (the router already forgets it)."""
        self._close("router_closed")

    def _close(self, reason: str) -> bool:
        if self._closed:
            return False
        self._closed = True
        self.buffer.clear()
        self._levels.remove(self.id)
        self.events.emit("closed", reason)
        self.events.remove_all_listeners()
        return True

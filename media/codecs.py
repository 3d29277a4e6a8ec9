"""Negotiated codec and RTP stream parameters, as plain frozen values.

The transport (media/transport.py) fills these from SDP; producers and consumers only read
them. A consumer's ``RtpParameters`` are the subscriber side's: its own SSRC, payload type,
RTX and header extension ids, which the consumer rewrites every packet to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from media.rtp import RtpPacket, abs_send_time, pack_extensions, pack_tail

# Header extension URIs tongke understands.
SDES_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TRANSMISSION_OFFSET = "urn:ietf:params:rtp-hdrext:toffset"
VIDEO_ORIENTATION = "urn:3gpp:video-orientation"

# Extensions a consumer copies from the producer's packet when both sides negotiated them.
# MID is the subscriber's own, abs-send-time is stamped at the server; others are dropped.
FORWARDED_EXTENSIONS = frozenset({AUDIO_LEVEL, TRANSMISSION_OFFSET, VIDEO_ORIENTATION})


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """One negotiated codec: e.g. ``CodecInfo("video/VP8", 90000, 96, rtx_payload_type=97)``.

    ``parameters`` are the fmtp parameters; ``rtcp_feedback`` entries are written as in SDP
    (``"nack"``, ``"nack pli"``, ``"ccm fir"``, ``"goog-remb"``). ``red_payload_type``: a
    subscriber's Opus that also negotiated ``audio/red`` (RFC 2198) over it, sent under that
    payload type (media/red.py); producers never have one.
    """

    mime_type: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    rtx_payload_type: int | None = None
    parameters: Mapping[str, str | int] = field(default_factory=dict)
    rtcp_feedback: tuple[str, ...] = ()
    red_payload_type: int | None = None

    @property
    def kind(self) -> str:
        """``"audio"`` or ``"video"``."""
        return self.mime_type.split("/", 1)[0].lower()

    @property
    def name(self) -> str:
        """The codec name in upper case: ``"OPUS"``, ``"VP8"``, ``"H264"``."""
        return self.mime_type.split("/", 1)[-1].upper()

    def has_feedback(self, feedback: str) -> bool:
        """True when ``feedback`` (e.g. ``"nack pli"``) was negotiated."""
        return feedback in self.rtcp_feedback


@dataclass(frozen=True, slots=True)
class RtpParameters:
    """One RTP stream's parameters: codec, SSRCs, header extension ids, MID and CNAME.

    ``header_extensions`` maps a URI (``SDES_MID`` ...) to its negotiated id (1-14 one-byte,
    up to 255 two-byte form). ``mid`` is written into the MID extension when negotiated.
    """

    codec: CodecInfo
    ssrc: int
    rtx_ssrc: int | None = None
    header_extensions: Mapping[str, int] = field(default_factory=dict)
    mid: str = ""
    cname: str = "tongke"

    @property
    def kind(self) -> str:
        """``"audio"`` or ``"video"``."""
        return self.codec.kind

    @property
    def rtx_enabled(self) -> bool:
        """True when both an RTX SSRC and an RTX payload type were negotiated."""
        return self.rtx_ssrc is not None and self.codec.rtx_payload_type is not None

    def extension_id(self, uri: str) -> int:
        """The negotiated id of ``uri``, or 0 when it was not negotiated."""
        return self.header_extensions.get(uri, 0)


class ExtensionRewriter:
    """Rewrites a producer's header extensions into one consumer's negotiated ids.

    Copies ``FORWARDED_EXTENSIONS`` negotiated on both sides (ids remapped), writes the
    consumer's own MID and stamps abs-send-time with the server's send time; drops the rest
    (the publisher's MID, transport-wide sequence numbers ...). Consumers with the same
    rewrite share one instance (``extension_rewriter``), and ``tail`` is cached on the
    packet, so a fan-out to many alike consumers rewrites and copies the payload once.
    """

    __slots__ = ("_abs_id", "_map", "_mid")

    def __init__(self, producer_ids: Mapping[str, int], consumer_ids: Mapping[str, int], mid: str):
        self._map = {
            producer_ids[uri]: consumer_ids[uri]
            for uri in FORWARDED_EXTENSIONS
            if uri in producer_ids and uri in consumer_ids
        }
        mid_id = consumer_ids.get(SDES_MID, 0)
        self._mid = (mid_id, mid.encode()) if mid_id and mid else None
        self._abs_id = consumer_ids.get(ABS_SEND_TIME, 0)

    def rewrite(self, packet: RtpPacket, now_ms: int | None = None) -> tuple[int, bytes]:
        """``(profile, body)`` of the consumer's extensions for ``packet``; abs-send-time is the
        packet's arrival (forwarding adds no wait) or ``now_ms`` for a retransmission."""
        exts = []
        if self._mid is not None:
            exts.append(self._mid)
        if self._abs_id:
            exts.append(
                (self._abs_id, abs_send_time(packet.arrival_ms if now_ms is None else now_ms))
            )
        if self._map:
            for i, value in packet.extensions:
                out = self._map.get(i)
                if out:
                    exts.append((out, value))
        return pack_extensions(exts)

    def tail(self, packet: RtpPacket) -> tuple[int, bytes]:
        """``(first header byte, bytes after the 12-byte fixed header)`` of the consumer's
        copy of ``packet``: computed once per packet for all consumers sharing this rewriter."""
        cache = packet.wire_cache
        if cache is not None and cache[0] is self:
            return cache[1], cache[2]
        profile, body = self.rewrite(packet)
        b0, tail = pack_tail(packet.payload, packet.csrc, profile, body, packet.padding_size)
        packet.wire_cache = (self, b0, tail)
        return b0, tail


@lru_cache(maxsize=1024)
def _rewriter(
    producer_items: tuple[tuple[str, int], ...],
    consumer_items: tuple[tuple[str, int], ...],
    mid: str,
) -> ExtensionRewriter:
    return ExtensionRewriter(dict(producer_items), dict(consumer_items), mid)


def extension_rewriter(producer: RtpParameters, consumer: RtpParameters) -> ExtensionRewriter:
    """The (shared) rewriter from ``producer``'s extension ids to ``consumer``'s."""
    return _rewriter(
        tuple(sorted(producer.header_extensions.items())),
        tuple(sorted(consumer.header_extensions.items())),
        consumer.mid,
    )


# VP8 payload descriptor ids (RFC 7741 4.2), kept continuous across a layer switch.


def vp8_ids(payload: bytes) -> tuple[int, int, int]:
    """``(picture id or -1, its mask 0x7F / 0x7FFF or 0, TL0PICIDX or -1)`` of a VP8 payload."""
    n = len(payload)
    if n < 3 or not payload[0] & 0x80:
        return -1, 0, -1
    x = payload[1]
    pos = 2
    pid, mask, tl0 = -1, 0, -1
    if x & 0x80:
        if payload[2] & 0x80:
            if n < 4:
                return -1, 0, -1
            pid, mask, pos = ((payload[2] & 0x7F) << 8) | payload[3], 0x7FFF, 4
        else:
            pid, mask, pos = payload[2], 0x7F, 3
    if x & 0x40 and pos < n:
        tl0 = payload[pos]
    return pid, mask, tl0


def vp8_with_ids(payload: bytes, pid: int, tl0: int) -> bytes:
    """``payload`` with its picture id and TL0PICIDX replaced (same field widths; -1 keeps)."""
    b = bytearray(payload)
    pos = 2
    if b[1] & 0x80:
        if b[2] & 0x80:
            if pid >= 0:
                b[2] = 0x80 | (pid >> 8) & 0x7F
                b[3] = pid & 0xFF
            pos = 4
        else:
            if pid >= 0:
                b[2] = pid & 0x7F
            pos = 3
    if b[1] & 0x40 and tl0 >= 0:
        b[pos] = tl0 & 0xFF
    return bytes(b)

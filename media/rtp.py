"""RTP packets as plain data (RFC 3550, RFC 8285 header extensions, RFC 4588 RTX) and
codec helpers that tell keyframes without decoding (VP8, H.264; Opus is always "key").

``RtpPacket.parse`` raises ``ValueError`` with a precise sentence on bad input; the transport
counts and drops such packets.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
_HEADER = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_EXT_HEADER = struct.Struct("!HH")
_EMPTY_EXTENSIONS: list[tuple[int, bytes]] = []


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet.

    ``extensions`` holds (id, value) pairs in wire order. With an extension profile other
    than one-byte (0xBEDE) or two-byte (0x100X), the whole extension body is kept verbatim
    as a single pair with id 0. ``padding_size`` counts the padding bytes including the
    final count byte.

    Not on the wire, set by the Producer once per packet so consumers need not redo the
    work: ``keyframe`` (first packet of a keyframe), ``arrival_ms`` (server arrival time) and
    ``wire_cache`` (the last consumer-side header extension rewrite, shared by consumers
    whose rewrite is the same); ``red_cache`` is the same for the RED copy (media/red.py),
    kept apart so plain and RED subscribers of one producer do not evict each other's.
    Nothing may mutate a packet once its producer has stored it.
    """

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    payload: bytes = b""
    csrc: tuple[int, ...] = ()
    extension_profile: int = 0
    extensions: list[tuple[int, bytes]] = field(default_factory=list)
    padding_size: int = 0
    version: int = 2
    keyframe: bool = field(default=False, compare=False, repr=False)
    arrival_ms: int = field(default=0, compare=False, repr=False)
    wire_cache: tuple[object, int, bytes] | None = field(default=None, compare=False, repr=False)
    red_cache: tuple[object, ...] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raise ValueError saying what is wrong."""
        size = len(data)
        if size < 12:
            raise ValueError("RTP packet length is less than 12 bytes.")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        version = b0 >> 6
        if version != 2:
            raise ValueError(f"RTP packet has version {version}, expected 2.")
        pos = 12
        cc = b0 & 0x0F
        end = size
        padding_size = 0
        if b0 & 0x20:
            padding_size = data[-1]
            if padding_size == 0 or padding_size > size - 12 - 4 * cc:
                raise ValueError(f"RTP packet padding length {padding_size} is invalid.")
            end = size - padding_size
        csrc: tuple[int, ...] = ()
        if cc:
            if pos + 4 * cc > end:
                raise ValueError("RTP packet CSRC list exceeds packet length.")
            csrc = struct.unpack_from(f"!{cc}I", data, pos)
            pos += 4 * cc
        profile = 0
        extensions = []
        if b0 & 0x10:
            if pos + 4 > end:
                raise ValueError("RTP header extension exceeds packet length.")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            ext_end = pos + 4 * words
            if ext_end > end:
                raise ValueError("RTP header extension exceeds packet length.")
            extensions = _parse_extensions(profile, data[pos:ext_end])
            pos = ext_end
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            marker=bool(b1 & 0x80),
            payload=data[pos:end],
            csrc=csrc,
            extension_profile=profile,
            extensions=extensions,
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        return pack_rtp(
            self.marker,
            self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
            self.payload,
            self.csrc,
            *pack_extensions(self.extensions, self.extension_profile),
            self.padding_size,
        )

    def get_extension(self, ext_id: int) -> bytes | None:
        """The value of extension ``ext_id``, or None when absent."""
        for i, value in self.extensions:
            if i == ext_id:
                return value
        return None

    def set_extension(self, ext_id: int, value: bytes) -> None:
        """Set (replace or append) extension ``ext_id``."""
        if not 1 <= ext_id <= 255:
            raise ValueError(f"RTP header extension id {ext_id} is out of range 1-255.")
        exts = [(i, v) for i, v in self.extensions if i != ext_id]
        exts.append((ext_id, bytes(value)))
        self.extensions = exts

    def remove_extension(self, ext_id: int) -> None:
        """Remove extension ``ext_id`` if present."""
        self.extensions = [(i, v) for i, v in self.extensions if i != ext_id]


def _parse_extensions(profile: int, body: bytes) -> list[tuple[int, bytes]]:
    exts: list[tuple[int, bytes]] = []
    n = len(body)
    pos = 0
    if profile == ONE_BYTE_PROFILE:
        while pos < n:
            ext_id = body[pos] >> 4
            if ext_id == 0:  # padding byte
                pos += 1
                continue
            if ext_id == 15:  # reserved: stop parsing (RFC 8285 4.2)
                break
            length = (body[pos] & 0x0F) + 1
            pos += 1
            if pos + length > n:
                raise ValueError("RTP one-byte header extension element exceeds extension length.")
            exts.append((ext_id, body[pos : pos + length]))
            pos += length
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while pos < n:
            ext_id = body[pos]
            if ext_id == 0:
                pos += 1
                continue
            if pos + 2 > n:
                raise ValueError("RTP two-byte header extension element exceeds extension length.")
            length = body[pos + 1]
            pos += 2
            if pos + length > n:
                raise ValueError("RTP two-byte header extension element exceeds extension length.")
            exts.append((ext_id, body[pos : pos + length]))
            pos += length
    elif body:
        exts.append((0, bytes(body)))
    return exts


def pack_extensions(extensions: list[tuple[int, bytes]], profile: int = 0) -> tuple[int, bytes]:
    """Serialize extensions to ``(profile, body)`` padded to 32 bits; ``(0, b"")`` if none.

    The one-byte form is used when every id is 1-14 and every value 1-16 bytes, unless a
    two-byte profile is asked for; otherwise the two-byte form.
    """
    if not extensions:
        return 0, b""
    if extensions[0][0] == 0:  # opaque body of an unknown profile
        return profile, extensions[0][1]
    one_byte = profile in (0, ONE_BYTE_PROFILE) and all(
        1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in extensions
    )
    parts = []
    if one_byte:
        profile = ONE_BYTE_PROFILE
        for i, v in extensions:
            parts.append(bytes(((i << 4) | (len(v) - 1),)))
            parts.append(v)
    else:
        if profile & 0xFFF0 != TWO_BYTE_PROFILE:
            profile = TWO_BYTE_PROFILE
        for i, v in extensions:
            if len(v) > 255:
                raise ValueError(f"RTP header extension {i} value is longer than 255 bytes.")
            parts.append(bytes((i, len(v))))
            parts.append(v)
    body = b"".join(parts)
    rem = len(body) % 4
    if rem:
        body += b"\x00" * (4 - rem)
    return profile, body


RTP_HEADER = _HEADER  # "!BBHII": first byte, marker|PT, seq, ts, SSRC


def pack_tail(
    payload: bytes,
    csrc: tuple[int, ...] = (),
    extension_profile: int = 0,
    extension_body: bytes = b"",
    padding_size: int = 0,
) -> tuple[int, bytes]:
    """``(first header byte, bytes after the 12-byte fixed header)`` of an RTP packet."""
    b0 = 0x80 | len(csrc)
    parts = []
    if csrc:
        parts.append(struct.pack(f"!{len(csrc)}I", *csrc))
    if extension_body or extension_profile:
        b0 |= 0x10
        parts.append(_EXT_HEADER.pack(extension_profile, len(extension_body) // 4))
        parts.append(extension_body)
    parts.append(payload)
    if padding_size:
        b0 |= 0x20
        parts.append(b"\x00" * (padding_size - 1) + bytes((padding_size,)))
    return b0, b"".join(parts)


def pack_rtp(
    marker: bool,
    payload_type: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    csrc: tuple[int, ...] = (),
    extension_profile: int = 0,
    extension_body: bytes = b"",
    padding_size: int = 0,
) -> bytes:
    """Serialize an RTP packet from its parts."""
    b0, tail = pack_tail(payload, csrc, extension_profile, extension_body, padding_size)
    return _HEADER.pack(b0, (0x80 if marker else 0) | payload_type, seq, ts, ssrc) + tail


# --- RTX (RFC 4588) -------------------------------------------------------------------


def wrap_rtx(packet: RtpPacket, payload_type: int, ssrc: int, sequence_number: int) -> RtpPacket:
    """The RTX packet carrying ``packet``: original sequence number prepended to the payload."""
    return RtpPacket(
        payload_type=payload_type,
        sequence_number=sequence_number,
        timestamp=packet.timestamp,
        ssrc=ssrc,
        marker=packet.marker,
        payload=_U16.pack(packet.sequence_number) + packet.payload,
        csrc=packet.csrc,
        extension_profile=packet.extension_profile,
        extensions=packet.extensions,
    )


def unwrap_rtx(rtx: RtpPacket, payload_type: int, ssrc: int) -> RtpPacket:
    """The original packet inside an RTX packet; raise ValueError if it carries none."""
    if len(rtx.payload) < 2:
        raise ValueError("RTX packet payload is shorter than 2 bytes.")
    return RtpPacket(
        payload_type=payload_type,
        sequence_number=_U16.unpack_from(rtx.payload)[0],
        timestamp=rtx.timestamp,
        ssrc=ssrc,
        marker=rtx.marker,
        payload=rtx.payload[2:],
        csrc=rtx.csrc,
        extension_profile=rtx.extension_profile,
        extensions=rtx.extensions,
    )


# --- keyframes without decoding --------------------------------------------------------


def vp8_payload_offset(payload: bytes) -> int:
    """Length of the VP8 payload descriptor (RFC 7741 4.2); raise ValueError if truncated."""
    n = len(payload)
    if n < 1:
        raise ValueError("VP8 payload descriptor is empty.")
    pos = 1
    if payload[0] & 0x80:
        if n < 2:
            raise ValueError("VP8 payload descriptor is truncated.")
        x = payload[1]
        pos = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if n < 3:
                raise ValueError("VP8 payload descriptor is truncated.")
            pos += 2 if payload[2] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    if pos > n:
        raise ValueError("VP8 payload descriptor is truncated.")
    return pos


def is_vp8_keyframe(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe: start of partition 0 with P bit clear."""
    if not payload or payload[0] & 0x1F != 0x10:  # S=1 and PID=0
        return False
    try:
        pos = vp8_payload_offset(payload)
    except ValueError:
        return False
    return pos < len(payload) and not payload[pos] & 0x01


def _h264_nal_types(payload: bytes) -> tuple[int, ...]:
    """NAL unit types a packet starts or carries (RFC 6184: single NAL, STAP-A, FU-A start)."""
    if not payload:
        return ()
    nal = payload[0] & 0x1F
    if nal == 24:  # STAP-A: 16-bit size then NAL unit, repeated
        types = []
        pos = 1
        n = len(payload)
        while pos + 2 < n:
            types.append(payload[pos + 2] & 0x1F)
            pos += 2 + _U16.unpack_from(payload, pos)[0]
        return tuple(types)
    if nal == 28:  # FU-A: only its first fragment starts a NAL unit
        if len(payload) > 1 and payload[1] & 0x80:
            return (payload[1] & 0x1F,)
        return ()
    return (nal,)


def is_h264_keyframe(payload: bytes) -> bool:
    """True for the first packet of an H.264 keyframe: the one carrying the SPS (NAL 7).

    Browsers and aiortc send SPS and PPS ahead of every IDR; syncing on the IDR slice alone
    (after a missed SPS) would leave a fresh decoder without parameter sets.
    """
    return 7 in _h264_nal_types(payload)


def is_h264_idr(payload: bytes) -> bool:
    """True when the packet starts an IDR slice (NAL 5), with or without parameter sets."""
    return 5 in _h264_nal_types(payload)


def is_keyframe(mime_type: str, payload: bytes) -> bool:
    """Keyframe test by codec; audio is always "key" (any packet can start a stream)."""
    name = mime_type.lower()
    if name == "video/vp8":
        return is_vp8_keyframe(payload)
    if name == "video/h264":
        return is_h264_keyframe(payload)
    return name.startswith("audio/")


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool]:
    """The keyframe test for one codec, chosen once (a producer keeps it)."""
    name = mime_type.lower()
    if name == "video/vp8":
        return is_vp8_keyframe
    if name == "video/h264":
        return is_h264_keyframe
    if name.startswith("audio/"):
        return _always
    return _never


def _always(payload: bytes) -> bool:
    return True


def _never(payload: bytes) -> bool:
    return False


# --- well-known extension values --------------------------------------------------------


def abs_send_time(ms: int) -> bytes:
    """abs-send-time value for a time in ms: 24-bit 6.18 fixed-point seconds."""
    return (((ms << 18) // 1000) & 0xFFFFFF).to_bytes(3, "big")


def parse_audio_level(value: bytes) -> tuple[int, bool]:
    """RFC 6464 ssrc-audio-level: ``(level in -dBov 0-127, voice activity flag)``."""
    if not value:
        raise ValueError("ssrc-audio-level extension is empty.")
    return value[0] & 0x7F, bool(value[0] & 0x80)

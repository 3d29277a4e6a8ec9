"""RTCP wire formats as data (RFC 3550, RFC 4585, RFC 5104, draft-alvestrand-rmcat-remb).

Each packet is a ``@dataclass(slots=True)`` with ``parse(data)`` (one packet's bytes, header
included) and ``__bytes__``. ``parse_compound`` splits a compound packet; packet types
tongke does not use (XR, transport-cc, APP ...) come back as ``RtcpUnknownPacket`` so that
a compound packet still round-trips. Bad input raises ``ValueError`` with a precise sentence.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

SR = 200
RR = 201
SDES = 202
BYE = 203
RTPFB = 205
PSFB = 206
NACK_FMT = 1
PLI_FMT = 1
FIR_FMT = 4
AFB_FMT = 15

NTP_UNIX_OFFSET_S = 2208988800  # seconds from 1900-01-01 to 1970-01-01

_HDR = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_II = struct.Struct("!II")
_SR_INFO = struct.Struct("!IQIII")


def ntp_from_ms(wall_ms: float) -> int:
    """64-bit NTP timestamp of a wall-clock time in ms since the Unix epoch."""
    return int((wall_ms / 1000 + NTP_UNIX_OFFSET_S) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ms_from_ntp(ntp: int) -> float:
    """Wall-clock ms since the Unix epoch of a 64-bit NTP timestamp."""
    return (ntp / (1 << 32) - NTP_UNIX_OFFSET_S) * 1000


def ntp_middle32(ntp: int) -> int:
    """The compact (middle 32 bits) NTP form used by LSR/DLSR."""
    return (ntp >> 16) & 0xFFFFFFFF


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    return _HDR.pack(0x80 | count, packet_type, len(body) // 4) + body


@dataclass(slots=True)
class RtcpReportBlock:
    """One reception report block (RFC 3550 6.4.1); packets_lost is signed 24-bit."""

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> RtcpReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        packets_lost = lost & 0xFFFFFF
        if packets_lost & 0x800000:
            packets_lost -= 1 << 24
        return cls(ssrc, lost >> 24, packets_lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr)


def _parse_blocks(data: bytes, pos: int, count: int, end: int, what: str) -> list[RtcpReportBlock]:
    if pos + 24 * count > end:
        raise ValueError(f"RTCP {what} has {count} report blocks but too few bytes for them.")
    return [RtcpReportBlock.parse(data, pos + 24 * i) for i in range(count)]


@dataclass(slots=True)
class RtcpSrPacket:
    """Sender report: NTP/RTP timestamp pair and sender counters, plus report blocks."""

    packet_type: ClassVar[int] = SR
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[RtcpReportBlock] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpSrPacket:
        count, end = _check(data, SR)
        if end < 28:
            raise ValueError("RTCP sender report is shorter than 28 bytes.")
        ssrc, ntp, rtp, packets, octets = _SR_INFO.unpack_from(data, 4)
        return cls(ssrc, ntp, rtp, packets, octets, _parse_blocks(data, 28, count, end, "SR"))

    def __bytes__(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body += b"".join(bytes(r) for r in self.reports)
        return _header(SR, len(self.reports), body)


@dataclass(slots=True)
class RtcpRrPacket:
    """Receiver report: the reporter's SSRC and its report blocks."""

    packet_type: ClassVar[int] = RR
    ssrc: int
    reports: list[RtcpReportBlock] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpRrPacket:
        count, end = _check(data, RR)
        if end < 8:
            raise ValueError("RTCP receiver report is shorter than 8 bytes.")
        ssrc = struct.unpack_from("!I", data, 4)[0]
        return cls(ssrc, _parse_blocks(data, 8, count, end, "RR"))

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _header(RR, len(self.reports), body)


@dataclass(slots=True)
class RtcpSdesChunk:
    """One SDES chunk: an SSRC and its (item type, value) pairs (1 = CNAME).

    ``terminator`` is how many null bytes end the chunk on the wire (0: the fewest, 1-4);
    parse keeps it so that a chunk written by another stack round-trips byte for byte.
    """

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)
    terminator: int = field(default=0, compare=False)


@dataclass(slots=True)
class RtcpSdesPacket:
    """Source description; tongke only writes CNAME."""

    packet_type: ClassVar[int] = SDES
    chunks: list[RtcpSdesChunk] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpSdesPacket:
        count, end = _check(data, SDES)
        chunks = []
        pos = 4
        for _ in range(count):
            if pos + 4 > end:
                raise ValueError("RTCP SDES chunk exceeds packet length.")
            chunk = RtcpSdesChunk(struct.unpack_from("!I", data, pos)[0])
            pos += 4
            while True:
                if pos >= end:
                    raise ValueError("RTCP SDES chunk is not terminated.")
                item_type = data[pos]
                if item_type == 0:
                    start = pos
                    pos = (pos + 4) & ~3  # the null item and padding to 32 bits
                    if len(chunks) == count - 1 and not any(data[pos:end]):
                        pos = end  # extra null words some stacks write after the last chunk
                    chunk.terminator = pos - start
                    break
                if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                    raise ValueError("RTCP SDES item exceeds packet length.")
                length = data[pos + 1]
                chunk.items.append((item_type, data[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            chunks.append(chunk)
        return cls(chunks)

    def __bytes__(self) -> bytes:
        body = b""
        for chunk in self.chunks:
            part = struct.pack("!I", chunk.ssrc)
            for item_type, value in chunk.items:
                part += bytes((item_type, len(value))) + value
            null = chunk.terminator or 4 - len(part) % 4
            part += b"\x00" * null
            body += part
        return _header(SDES, len(self.chunks), body)


@dataclass(slots=True)
class RtcpByePacket:
    """Goodbye for one or more SSRCs, with an optional reason."""

    packet_type: ClassVar[int] = BYE
    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtcpByePacket:
        count, end = _check(data, BYE)
        pos = 4 + 4 * count
        if pos > end:
            raise ValueError("RTCP BYE source list exceeds packet length.")
        sources = list(struct.unpack_from(f"!{count}I", data, 4))
        reason = b""
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise ValueError("RTCP BYE reason exceeds packet length.")
            reason = data[pos + 1 : pos + 1 + length]
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason:
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + b"\x00" * (-len(reason) % 4)
        return _header(BYE, len(self.sources), body)


@dataclass(slots=True)
class RtcpNackPacket:
    """Generic NACK (RTPFB fmt 1): lost sequence numbers of ``media_ssrc``."""

    packet_type: ClassVar[int] = RTPFB
    sender_ssrc: int
    media_ssrc: int
    lost: list[int] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpNackPacket:
        _, end = _check(data, RTPFB)
        if end < 12 or (end - 12) % 4:
            raise ValueError("RTCP generic NACK length is invalid.")
        sender, media = _II.unpack_from(data, 4)
        lost = []
        for pos in range(12, end, 4):
            pid, blp = struct.unpack_from("!HH", data, pos)
            lost.append(pid)
            for bit in range(16):
                if blp >> bit & 1:
                    lost.append((pid + bit + 1) & 0xFFFF)
        return cls(sender, media, lost)

    def __bytes__(self) -> bytes:
        body = _II.pack(self.sender_ssrc, self.media_ssrc)
        pid = -1
        blp = 0
        for seq in self.lost:
            d = (seq - pid) & 0xFFFF
            if pid >= 0 and 1 <= d <= 16:
                blp |= 1 << (d - 1)
                continue
            if pid >= 0:
                body += struct.pack("!HH", pid, blp)
            pid, blp = seq, 0
        if pid >= 0:
            body += struct.pack("!HH", pid, blp)
        return _header(RTPFB, NACK_FMT, body)


@dataclass(slots=True)
class RtcpPliPacket:
    """Picture loss indication (PSFB fmt 1)."""

    packet_type: ClassVar[int] = PSFB
    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def parse(cls, data: bytes) -> RtcpPliPacket:
        _, end = _check(data, PSFB)
        if end < 12:
            raise ValueError("RTCP PLI is shorter than 12 bytes.")
        return cls(*_II.unpack_from(data, 4))

    def __bytes__(self) -> bytes:
        return _header(PSFB, PLI_FMT, _II.pack(self.sender_ssrc, self.media_ssrc))


@dataclass(slots=True)
class RtcpFirPacket:
    """Full intra request (PSFB fmt 4): (media SSRC, command sequence number) entries."""

    packet_type: ClassVar[int] = PSFB
    sender_ssrc: int
    entries: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpFirPacket:
        _, end = _check(data, PSFB)
        if end < 12 or (end - 12) % 8:
            raise ValueError("RTCP FIR length is invalid.")
        sender = struct.unpack_from("!I", data, 4)[0]
        entries = [
            (struct.unpack_from("!I", data, pos)[0], data[pos + 4]) for pos in range(12, end, 8)
        ]
        return cls(sender, entries)

    def __bytes__(self) -> bytes:
        body = _II.pack(self.sender_ssrc, 0)
        for ssrc, seq in self.entries:
            body += struct.pack("!IB3x", ssrc, seq & 0xFF)
        return _header(PSFB, FIR_FMT, body)


@dataclass(slots=True)
class RtcpRembPacket:
    """Receiver estimated maximum bitrate (PSFB fmt 15, "REMB") for a list of SSRCs."""

    packet_type: ClassVar[int] = PSFB
    sender_ssrc: int
    bitrate: int
    ssrcs: list[int] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtcpRembPacket:
        _, end = _check(data, PSFB)
        if end < 20 or data[12:16] != b"REMB":
            raise ValueError("RTCP application feedback is not a REMB.")
        sender = struct.unpack_from("!I", data, 4)[0]
        count = data[16]
        if 20 + 4 * count > end:
            raise ValueError("RTCP REMB SSRC list exceeds packet length.")
        exponent = data[17] >> 2
        mantissa = ((data[17] & 0x03) << 16) | struct.unpack_from("!H", data, 18)[0]
        ssrcs = list(struct.unpack_from(f"!{count}I", data, 20))
        return cls(sender, mantissa << exponent, ssrcs)

    def __bytes__(self) -> bytes:
        mantissa = self.bitrate
        exponent = 0
        while mantissa >= 1 << 18:
            mantissa >>= 1
            exponent += 1
        body = _II.pack(self.sender_ssrc, 0) + b"REMB"
        body += bytes((len(self.ssrcs), (exponent << 2) | (mantissa >> 16)))
        body += struct.pack("!H", mantissa & 0xFFFF)
        body += struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        return _header(PSFB, AFB_FMT, body)


@dataclass(slots=True)
class RtcpUnknownPacket:
    """A packet type tongke does not interpret, kept verbatim (header fields and body, whose
    last bytes are the padding when ``padded``)."""

    packet_type: int
    count: int
    body: bytes
    padded: bool = False

    def __bytes__(self) -> bytes:
        data = _header(self.packet_type, self.count, self.body)
        return bytes((data[0] | 0x20,)) + data[1:] if self.padded else data


RtcpPacket = (
    RtcpSrPacket
    | RtcpRrPacket
    | RtcpSdesPacket
    | RtcpByePacket
    | RtcpNackPacket
    | RtcpPliPacket
    | RtcpFirPacket
    | RtcpRembPacket
    | RtcpUnknownPacket
)


def _check(data: bytes, packet_type: int) -> tuple[int, int]:
    """Validate one packet's header; return (count field, end of payload without padding)."""
    if len(data) < 4:
        raise ValueError("RTCP packet length is less than 4 bytes.")
    b0, pt, words = _HDR.unpack_from(data)
    if b0 >> 6 != 2:
        raise ValueError(f"RTCP packet has version {b0 >> 6}, expected 2.")
    if pt != packet_type:
        raise ValueError(f"RTCP packet type is {pt}, expected {packet_type}.")
    end = 4 + 4 * words
    if end > len(data):
        raise ValueError(f"RTCP packet length field says {end} bytes but {len(data)} remain.")
    if b0 & 0x20:
        padding = data[end - 1]
        if padding == 0 or padding > end - 4:
            raise ValueError(f"RTCP packet padding length {padding} is invalid.")
        end -= padding
    return b0 & 0x1F, end


def parse_packet(data: bytes) -> RtcpPacket:
    """Parse exactly one RTCP packet (``data`` is that packet's bytes)."""
    if len(data) < 4:
        raise ValueError("RTCP packet length is less than 4 bytes.")
    count = data[0] & 0x1F
    pt = data[1]
    if pt == SR:
        return RtcpSrPacket.parse(data)
    if pt == RR:
        return RtcpRrPacket.parse(data)
    if pt == SDES:
        return RtcpSdesPacket.parse(data)
    if pt == BYE:
        return RtcpByePacket.parse(data)
    if pt == RTPFB and count == NACK_FMT:
        return RtcpNackPacket.parse(data)
    if pt == PSFB and count == PLI_FMT:
        return RtcpPliPacket.parse(data)
    if pt == PSFB and count == FIR_FMT:
        return RtcpFirPacket.parse(data)
    if pt == PSFB and count == AFB_FMT and data[12:16] == b"REMB":
        return RtcpRembPacket.parse(data)
    _check(data, pt)
    body = bytes(data[4 : 4 + 4 * (data[2] << 8 | data[3])])
    return RtcpUnknownPacket(pt, count, body, bool(data[0] & 0x20))


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet; raise ValueError on the first bad one."""
    packets: list[RtcpPacket] = []
    pos = 0
    n = len(data)
    if n == 0:
        raise ValueError("RTCP compound packet is empty.")
    while pos < n:
        if n - pos < 4:
            raise ValueError("RTCP packet length is less than 4 bytes.")
        end = pos + 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
        if end > n:
            raise ValueError(
                f"RTCP packet length field says {end - pos} bytes but {n - pos} remain."
            )
        packets.append(parse_packet(data[pos:end]))
        pos = end
    return packets


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound packet (reports should come first)."""
    return b"".join(bytes(p) for p in packets)

"""H.264 access units to RTP (RFC 6184, packetization-mode 1), without decoding.

An RTSP source (a 录播 host) hands over whole access units as NAL units. Browsers need
packetization-mode 1: small NAL units are aggregated into STAP-A packets (SPS and PPS in
front of an IDR, typically), large ones split into FU-A fragments. SPS and PPS are
repeated before every IDR (a receiver that joins at any keyframe can decode it), taken
from the stream itself or, when the source sends them only out of band, from its SDP.
Access unit delimiters (NAL 9) and filler data (NAL 12) are dropped: they carry nothing
a receiver needs.
"""

from __future__ import annotations

import random

from media.rtp import RtpPacket

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_FILLER = 12
STAP_A = 24
FU_A = 28
DROPPED = frozenset({NAL_AUD, NAL_FILLER})

DEFAULT_MTU = 1200  # RTP payload bytes: room for SRTP, extensions and a tunnel on the way


def split_nal_units(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (00 00 01 / 00 00 00 01 start codes) or, without
    a start code, of length-prefixed (AVCC, 4-byte) data. ValueError when neither fits."""
    if data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        units = []
        for part in data.split(b"\x00\x00\x01"):
            part = part.rstrip(b"\x00")  # a 4-byte start code's first zero (never NAL data)
            if part:
                units.append(part)
        return units
    units = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("H.264 data is neither Annex B nor 4-byte length-prefixed.")
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size == 0 or pos + 4 + size > len(data):
            raise ValueError("H.264 data is neither Annex B nor 4-byte length-prefixed.")
        units.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return units


def profile_level_id(sps: bytes) -> str:
    """The SDP profile-level-id (6 hex digits) an SPS NAL unit declares."""
    if len(sps) < 4 or sps[0] & 0x1F != NAL_SPS:
        raise ValueError("Not an H.264 SPS NAL unit.")
    return sps[1:4].hex()


class H264Packetizer:
    """One H.264 stream's RTP packetizer: sequence numbers run on across access units (and
    across reconnects of the source)."""

    def __init__(self, payload_type: int, ssrc: int, mtu: int = DEFAULT_MTU) -> None:
        if mtu < 100:
            raise ValueError("An MTU under 100 bytes cannot carry H.264 fragments.")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.mtu = mtu
        self.sequence_number = random.randrange(1 << 16)
        self.sps = b""
        self.pps = b""
        self._frame_ts = -1  # the frame the last packetize() call belonged to

    def set_parameter_sets(self, nal_units: list[bytes]) -> None:
        """Out-of-band SPS/PPS (the source's SDP sprop-parameter-sets, its extradata)."""
        for nal in nal_units:
            self._remember(nal)

    def _remember(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == NAL_SPS:
            self.sps = nal
        elif kind == NAL_PPS:
            self.pps = nal

    def packetize(
        self, nal_units: list[bytes], timestamp: int, end_of_frame: bool = True
    ) -> list[RtpPacket]:
        """RTP packets of one access unit, or of a part of one (``end_of_frame`` False: more
        slices of the same frame follow); the marker bit is set on a frame's last packet."""
        units = []
        has_sps = has_pps = has_idr = False
        for nal in nal_units:
            if not nal:
                continue
            kind = nal[0] & 0x1F
            if kind in DROPPED:
                continue
            self._remember(nal)
            has_sps |= kind == NAL_SPS
            has_pps |= kind == NAL_PPS
            has_idr |= kind == NAL_IDR
            units.append(nal)
        first_part = timestamp != self._frame_ts
        self._frame_ts = timestamp
        if has_idr and first_part and not (has_sps and has_pps) and self.sps and self.pps:
            rest = [u for u in units if u[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
            units = [self.sps, self.pps, *rest]
        payloads: list[bytes] = []
        pending: list[bytes] = []  # small units waiting to be aggregated
        for nal in units:
            if len(nal) > self.mtu:
                payloads.extend(self._aggregate(pending))
                pending = []
                payloads.extend(self._fragment(nal))
            elif sum(2 + len(u) for u in pending) + 3 + len(nal) > self.mtu:
                payloads.extend(self._aggregate(pending))
                pending = [nal]
            else:
                pending.append(nal)
        payloads.extend(self._aggregate(pending))
        packets = []
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    payload_type=self.payload_type,
                    sequence_number=self.sequence_number,
                    timestamp=timestamp & 0xFFFFFFFF,
                    ssrc=self.ssrc,
                    marker=end_of_frame and i == last,
                    payload=payload,
                )
            )
            self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        return packets

    @staticmethod
    def _aggregate(units: list[bytes]) -> list[bytes]:
        """One STAP-A of ``units`` (a single unit goes as itself: no aggregation header)."""
        if not units:
            return []
        if len(units) == 1:
            return [units[0]]
        nri = max(u[0] & 0x60 for u in units)
        body = b"".join(len(u).to_bytes(2, "big") + u for u in units)
        return [bytes((nri | STAP_A,)) + body]

    def _fragment(self, nal: bytes) -> list[bytes]:
        header = nal[0]
        indicator = (header & 0xE0) | FU_A
        kind = header & 0x1F
        data = nal[1:]
        room = self.mtu - 2
        chunks = [data[i : i + room] for i in range(0, len(data), room)]
        out = []
        for i, chunk in enumerate(chunks):
            start = 0x80 if i == 0 else 0
            end = 0x40 if i == len(chunks) - 1 else 0
            out.append(bytes((indicator, start | end | kind)) + chunk)
        return out

"""RTP to encoded frames, without decoding: VP8 (RFC 7741), H.264 (RFC 6184) and Opus.

The recorder's writer thread feeds every RTP packet of one stream to a ``Depacketizer``
and gets whole encoded frames back, ready to be muxed. Packets pass a small reordering
window first; a sequence gap that the window cannot close drops the damaged frame, and
video then waits for the next keyframe so nothing undecodable reaches the file.

A malformed packet raises nothing out of ``push``: it is counted in ``stats.malformed``
and its frame is dropped like a lost one. The payload parsers themselves raise
``ValueError`` with a precise sentence, which tests check.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHI")
_U16 = struct.Struct("!H")
_U16_LE = struct.Struct("<H")
ANNEX_B_START = b"\x00\x00\x00\x01"

# H.264 NAL unit types (RFC 6184 section 5.2, ITU-T H.264 table 7-1).
NAL_IDR = 5
NAL_SPS = 7
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28


@dataclass(slots=True, frozen=True)
class RtpHeader:
    """The few RTP fields the recorder needs, and where the payload lies."""

    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpHeader:
    """Parse the fixed RTP header, CSRCs, extension and padding; raise ValueError."""
    size = len(data)
    if size < 12:
        raise ValueError("RTP packet length is less than 12 bytes.")
    b0, b1, seq, ts = _HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise ValueError(f"RTP packet has version {b0 >> 6}, expected 2.")
    pos = 12 + 4 * (b0 & 0x0F)
    end = size
    if b0 & 0x20:
        end -= data[-1]
    if b0 & 0x10:
        if pos + 4 > end:
            raise ValueError("RTP header extension exceeds packet length.")
        (words,) = _U16.unpack_from(data, pos + 2)
        pos += 4 + 4 * words
    if pos > end:
        raise ValueError("RTP header is longer than the packet.")
    return RtpHeader(bool(b1 & 0x80), b1 & 0x7F, seq, ts, bytes(data[pos:end]))


@dataclass(slots=True)
class Frame:
    """One encoded frame: ``timestamp`` is the RTP timestamp, ``arrival`` the wall-clock
    time (seconds) its first packet arrived."""

    data: bytes
    timestamp: int
    keyframe: bool
    arrival: float


@dataclass(slots=True)
class DepacketizerStats:
    packets: int = 0
    frames: int = 0
    late: int = 0  # arrived after the reordering window had given up on it
    lost: int = 0  # sequence numbers never seen
    malformed: int = 0
    dropped_frames: int = 0  # damaged, or skipped while waiting for a keyframe


# --- payload formats ---------------------------------------------------------------------


def vp8_descriptor(payload: bytes) -> tuple[bool, int, int]:
    """Parse an RFC 7741 payload descriptor: (start of partition, partition id, size)."""
    if not payload:
        raise ValueError("VP8 payload is empty.")
    b0 = payload[0]
    pos = 1
    if b0 & 0x80:  # X: extended control bits
        if len(payload) < 2:
            raise ValueError("VP8 payload descriptor is truncated.")
        x = payload[1]
        pos = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= pos:
                raise ValueError("VP8 payload descriptor is truncated.")
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    if pos >= len(payload):
        raise ValueError("VP8 payload has a descriptor but no data.")
    return bool(b0 & 0x10), b0 & 0x07, pos


def vp8_dimensions(frame: bytes) -> tuple[int, int]:
    """Width and height from a VP8 keyframe header (RFC 6386 section 9.1)."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        raise ValueError("VP8 frame is not a keyframe with a valid start code.")
    return (_U16_LE.unpack_from(frame, 6)[0] & 0x3FFF, _U16_LE.unpack_from(frame, 8)[0] & 0x3FFF)


def h264_nal_units(payload: bytes, in_fu: bool) -> tuple[list[bytes], bool]:
    """Split one RFC 6184 payload into NAL pieces to append to the access unit.

    Returns (pieces, fu_open): pieces carry the Annex B start code when they begin a NAL
    unit; a FU-A middle or end piece is raw data for the unit still open.
    """
    if not payload:
        raise ValueError("H.264 payload is empty.")
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return [ANNEX_B_START + payload], False
    if nal_type == NAL_STAP_A:
        pieces = []
        pos = 1
        while pos < len(payload):
            if pos + 2 > len(payload):
                raise ValueError("H.264 STAP-A NAL size is truncated.")
            (size,) = _U16.unpack_from(payload, pos)
            pos += 2
            if size == 0 or pos + size > len(payload):
                raise ValueError(f"H.264 STAP-A NAL size {size} exceeds the payload.")
            pieces.append(ANNEX_B_START + payload[pos : pos + size])
            pos += size
        if not pieces:
            raise ValueError("H.264 STAP-A holds no NAL unit.")
        return pieces, False
    if nal_type == NAL_FU_A:
        if len(payload) < 3:
            raise ValueError("H.264 FU-A payload is shorter than 3 bytes.")
        start, end = bool(payload[1] & 0x80), bool(payload[1] & 0x40)
        if start:
            header = bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            return [ANNEX_B_START + header + payload[2:]], not end
        if not in_fu:
            raise ValueError("H.264 FU-A fragment arrived without its start.")
        return [payload[2:]], not end
    raise ValueError(f"H.264 NAL unit type {nal_type} is not supported.")


def h264_nal_types(access_unit: bytes) -> set[int]:
    """NAL unit types present in an Annex B access unit."""
    types = set()
    pos = access_unit.find(ANNEX_B_START)
    while pos != -1 and pos + 4 < len(access_unit):
        types.add(access_unit[pos + 4] & 0x1F)
        pos = access_unit.find(ANNEX_B_START, pos + 4)
    return types


# --- reordering and assembly -------------------------------------------------------------


class Depacketizer:
    """Reorders one stream's packets and assembles frames (base: one packet = one frame).

    ``push`` returns the frames completed by this packet; ``flush`` returns what is left
    at the end. ``window`` is how many packets may wait behind a missing one before it is
    declared lost.
    """

    is_video = False

    def __init__(self, window: int = 64) -> None:
        self.stats = DepacketizerStats()
        self._window = window
        self._startup = min(window, 8)
        self._next: int | None = None  # extended sequence number expected next
        self._last_ext = 0
        self._pending: dict[int, tuple[RtpHeader, float]] = {}
        self._out: list[Frame] = []
        # Frame in progress.
        self._parts: list[bytes] = []
        self._ts: int | None = None
        self._arrival = 0.0
        self._damaged = False
        self._after_gap = False
        self._need_keyframe = self.is_video

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while video frames are being skipped until the next keyframe."""
        return self._need_keyframe

    def push(self, data: bytes, arrival: float) -> list[Frame]:
        try:
            header = parse_rtp(data)
        except ValueError:
            self.stats.malformed += 1
            return []
        self.stats.packets += 1
        ext = self._extend(header.sequence_number)
        if (self._next is not None and ext < self._next) or ext in self._pending:
            self.stats.late += 1
            return []
        self._pending[ext] = (header, arrival)
        if self._next is None:
            # Hold the first few packets so that reordering at the very start is undone too.
            if len(self._pending) < self._startup:
                return []
            self._next = min(self._pending)
        self._drain()
        if len(self._pending) > self._window:
            self._skip_gap()
        out, self._out = self._out, []
        return out

    def flush(self) -> list[Frame]:
        if self._next is None and self._pending:
            self._next = min(self._pending)
        while self._pending:
            self._skip_gap()
        self._end_frame(complete=False)
        out, self._out = self._out, []
        return out

    def _extend(self, seq: int) -> int:
        # Extended sequence number nearest to the last one seen (wrap-safe).
        delta = (seq - self._last_ext) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        self._last_ext += delta
        return self._last_ext

    def _drain(self) -> None:
        assert self._next is not None
        while self._next in self._pending:
            header, arrival = self._pending.pop(self._next)
            self._next += 1
            self._packet(header, arrival)

    def _skip_gap(self) -> None:
        assert self._next is not None
        first = min(self._pending)
        self.stats.lost += first - self._next
        self._next = first
        self._gap()
        self._drain()

    # Assembly, overridden by video codecs. -------------------------------------------------

    def _gap(self) -> None:
        pass

    def _packet(self, header: RtpHeader, arrival: float) -> None:
        if header.payload:
            self._emit(header.payload, header.timestamp, True, arrival)

    def _emit(self, data: bytes, ts: int, keyframe: bool, arrival: float) -> None:
        self.stats.frames += 1
        self._out.append(Frame(data, ts, keyframe, arrival))

    def _end_frame(self, complete: bool) -> None:
        pass


class VideoDepacketizer(Depacketizer):
    """Frames end at the marker bit or a timestamp change. A gap damages the frame in
    progress (dropped) and makes the stream wait for the next intact keyframe."""

    is_video = True

    def _gap(self) -> None:
        self._damaged = True
        self._after_gap = True
        self._need_keyframe = True

    def _packet(self, header: RtpHeader, arrival: float) -> None:
        if self._ts is not None and header.timestamp != self._ts:
            self._end_frame(complete=True)
        try:
            if self._ts is None:
                self._ts = header.timestamp
                self._arrival = arrival
                self._parts = []
                self._damaged = not self._starts_frame(header.payload, self._after_gap)
                self._after_gap = False
            if not self._damaged:
                self._add(header.payload)
        except ValueError:
            self.stats.malformed += 1
            self._damaged = True
        if header.marker:
            self._end_frame(complete=True)

    def _end_frame(self, complete: bool) -> None:
        if self._ts is None:
            return
        ts, parts, damaged = self._ts, self._parts, self._damaged or not complete
        self._ts, self._parts, self._damaged = None, [], False
        if damaged or not parts:
            self._drop()
            return
        data = b"".join(parts)
        keyframe = self._is_keyframe(data)
        if self._need_keyframe and not keyframe:
            self._drop()
            return
        self._need_keyframe = False
        self._emit(data, ts, keyframe, self._arrival)

    def _drop(self) -> None:
        self.stats.dropped_frames += 1
        self._need_keyframe = True

    def _starts_frame(self, payload: bytes, after_gap: bool) -> bool:
        raise NotImplementedError

    def _add(self, payload: bytes) -> None:
        raise NotImplementedError

    def _is_keyframe(self, data: bytes) -> bool:
        raise NotImplementedError


class Vp8Depacketizer(VideoDepacketizer):
    def _starts_frame(self, payload: bytes, after_gap: bool) -> bool:
        start, partition, _ = vp8_descriptor(payload)
        return start and partition == 0

    def _add(self, payload: bytes) -> None:
        _, _, pos = vp8_descriptor(payload)
        self._parts.append(payload[pos:])

    def _is_keyframe(self, data: bytes) -> bool:
        return not data[0] & 1


class H264Depacketizer(VideoDepacketizer):
    """Access units come out in Annex B form (start codes), as the Matroska muxer wants."""

    def __init__(self, window: int = 64) -> None:
        super().__init__(window)
        self._in_fu = False

    def _end_frame(self, complete: bool) -> None:
        if self._in_fu:
            complete = False  # the last FU-A fragment never came
        self._in_fu = False
        super()._end_frame(complete)

    def _starts_frame(self, payload: bytes, after_gap: bool) -> bool:
        if not payload:
            raise ValueError("H.264 payload is empty.")
        if not after_gap:
            return True
        # After a gap we cannot know what this access unit lost; keep it only if it
        # visibly starts one (SPS or access unit delimiter first).
        first = payload[0] & 0x1F
        if first == NAL_STAP_A and len(payload) > 3:
            first = payload[3] & 0x1F
        return first in (NAL_SPS, NAL_AUD)

    def _add(self, payload: bytes) -> None:
        pieces, self._in_fu = h264_nal_units(payload, self._in_fu)
        self._parts.extend(pieces)

    def _is_keyframe(self, data: bytes) -> bool:
        return NAL_IDR in h264_nal_types(data)


def create_depacketizer(mime_type: str, window: int = 64) -> Depacketizer:
    """The depacketizer for a codec mime type; ValueError for codecs we cannot record."""
    name = mime_type.lower()
    if name == "video/vp8":
        return Vp8Depacketizer(window)
    if name == "video/h264":
        return H264Depacketizer(window)
    if name == "audio/opus":
        return Depacketizer(window)
    raise ValueError(f"Recording codec {mime_type} is not supported.")

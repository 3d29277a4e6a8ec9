"""Plain in-memory helpers for the media core tests: a settable clock, recording sinks, and
builders of VP8/H.264/Opus packets (no sockets, no mocks)."""

from __future__ import annotations

from pathlib import Path

from media.codecs import ABS_SEND_TIME, AUDIO_LEVEL, SDES_MID, CodecInfo, RtpParameters
from media.rtcp import parse_compound
from media.rtp import RtpPacket

DATA = Path(__file__).parent / "data"

VP8 = CodecInfo(
    "video/VP8",
    90000,
    96,
    rtx_payload_type=97,
    rtcp_feedback=("nack", "nack pli", "ccm fir", "goog-remb"),
)
H264 = CodecInfo(
    "video/H264",
    90000,
    102,
    rtx_payload_type=103,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    rtcp_feedback=("nack", "nack pli"),
)
OPUS = CodecInfo("audio/opus", 48000, 111, channels=2)
PUBLISHER_EXTENSIONS = {SDES_MID: 1, ABS_SEND_TIME: 2, AUDIO_LEVEL: 3}

VP8_KEY = bytes([0x90, 0x80, 0x05, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])  # S=1, keyframe
VP8_DELTA = bytes([0x90, 0x80, 0x06, 0x11, 0x02, 0x00])  # S=1, P=1
VP8_MIDDLE = bytes([0x80, 0x80, 0x05, 0xAA, 0xBB])  # S=0: continuation


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


class Clock:
    """A clock the test moves by hand (ms)."""

    def __init__(self, now: int = 10_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


class RecordingSink:
    """Keeps every RTP and RTCP datagram written to it, parsed back for assertions."""

    def __init__(self) -> None:
        self.rtp_data: list[bytes] = []
        self.rtcp_data: list[bytes] = []

    def send_rtp(self, data: bytes) -> None:
        self.rtp_data.append(data)

    def send_rtcp(self, data: bytes) -> None:
        self.rtcp_data.append(data)

    @property
    def rtp(self) -> list[RtpPacket]:
        return [RtpPacket.parse(d) for d in self.rtp_data]

    @property
    def rtcp(self) -> list[object]:
        return [p for d in self.rtcp_data for p in parse_compound(d)]

    def seqs(self) -> list[int]:
        return [p.sequence_number for p in self.rtp]

    def clear(self) -> None:
        self.rtp_data.clear()
        self.rtcp_data.clear()


def params(
    codec: CodecInfo = VP8,
    ssrc: int = 1000,
    rtx_ssrc: int | None = 1001,
    extensions: dict[str, int] | None = None,
    mid: str = "",
) -> RtpParameters:
    return RtpParameters(
        codec=codec,
        ssrc=ssrc,
        rtx_ssrc=rtx_ssrc,
        header_extensions=PUBLISHER_EXTENSIONS if extensions is None else extensions,
        mid=mid,
    )


def video(
    seq: int,
    ts: int,
    *,
    key: bool = False,
    start: bool = True,
    ssrc: int = 1000,
    pt: int = 96,
    marker: bool = False,
    payload: bytes | None = None,
) -> RtpPacket:
    """A VP8 packet: keyframe start, delta start, or (start=False) a continuation."""
    if payload is None:
        payload = VP8_KEY if key else VP8_DELTA if start else VP8_MIDDLE
    return RtpPacket(
        payload_type=pt,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=ssrc,
        marker=marker,
        payload=payload + seq.to_bytes(4, "big"),
        extensions=[(1, b"p"), (2, b"\x00\x00\x01")],
        extension_profile=0xBEDE,
    )


def audio(seq: int, ts: int, *, ssrc: int = 2000, level: int | None = None) -> RtpPacket:
    exts = [(1, b"a")]
    if level is not None:
        exts.append((3, bytes([0x80 | level])))
    return RtpPacket(
        payload_type=111,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=b"\xfc\xff\xfe" + seq.to_bytes(2, "big"),
        extensions=exts,
        extension_profile=0xBEDE,
    )


def vp8_payload(picture_id: int, *, key: bool = False, start: bool = True) -> bytes:
    """A VP8 payload with a 15-bit picture id (as browsers send): descriptor + header byte."""
    descriptor = bytes([0x90 if start else 0x80, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF])
    if not start:
        return descriptor + b"\xaa"
    return descriptor + (b"\x10\x02\x00\x9d\x01\x2a" if key else b"\x11\x02\x00")

"""The tests' publisher: real VP8, H.264 and Opus made with PyAV encoders, packetized into
RTP per RFC 7741, RFC 6184 and RFC 7587 the way a browser would send them."""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
from PIL import Image, ImageDraw

VIDEO_RATE = 90000
AUDIO_RATE = 48000
FPS = 25
SIZE = (320, 240)
LEAD_BLUE = (30, 30, 120)  # background of the lead's moving-box picture
GREEN = (0, 200, 0)  # classroom A
MAGENTA = (200, 0, 200)  # classroom B


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    timestamp: int  # RTP clock units from the clip's start
    keyframe: bool


@dataclass(frozen=True, slots=True)
class Codec:
    mime_type: str
    clock_rate: int
    payload_type: int


VP8 = Codec("video/VP8", VIDEO_RATE, 96)
H264 = Codec("video/H264", VIDEO_RATE, 102)
OPUS = Codec("audio/opus", AUDIO_RATE, 111)


def picture(index: int, color: tuple[int, int, int] | None) -> Image.Image:
    """A solid colour, or (None) a dark blue picture with a white box moving across."""
    if color is not None:
        return Image.new("RGB", SIZE, color)
    image = Image.new("RGB", SIZE, LEAD_BLUE)
    x = (index * 6) % (SIZE[0] - 40)
    ImageDraw.Draw(image).rectangle((x, 100, x + 40, 140), fill=(255, 255, 255))
    return image


def encode_video(
    codec: str, seconds: float, color: tuple[int, int, int] | None = None, gop: int = 25
) -> list[EncodedFrame]:
    """Encode ``seconds`` of video at 25 fps, a keyframe every ``gop`` frames."""
    if codec == "vp8":
        enc = av.CodecContext.create("libvpx", "w")
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    else:
        enc = av.CodecContext.create("libx264", "w")
        enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
        enc.profile = "Constrained Baseline"
    enc.width, enc.height = SIZE
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1, VIDEO_RATE)
    enc.framerate = FPS
    enc.gop_size = gop
    enc.thread_count = 1
    frames: list[EncodedFrame] = []
    step = VIDEO_RATE // FPS
    for i in range(round(seconds * FPS)):
        frame = av.VideoFrame.from_image(picture(i, color)).reformat(format="yuv420p")
        frame.pts = i * step
        frame.time_base = enc.time_base
        if i % gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in enc.encode(frame):
            frames.append(EncodedFrame(bytes(packet), packet.pts, packet.is_keyframe))
    for packet in enc.encode(None):
        frames.append(EncodedFrame(bytes(packet), packet.pts, packet.is_keyframe))
    return frames


def encode_opus(seconds: float, frequency: float = 440.0) -> list[EncodedFrame]:
    """Encode a stereo sine tone in 20 ms Opus packets."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = AUDIO_RATE
    enc.layout = "stereo"
    enc.format = "s16"
    enc.time_base = Fraction(1, AUDIO_RATE)
    samples = 960
    out: list[EncodedFrame] = []
    for i in range(round(seconds * 50)):
        pcm = array("h")
        for n in range(samples):
            v = int(8000 * math.sin(2 * math.pi * frequency * (i * samples + n) / AUDIO_RATE))
            pcm.append(v)
            pcm.append(v)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = AUDIO_RATE
        frame.pts = i * samples
        frame.time_base = enc.time_base
        for packet in enc.encode(frame):
            out.append(EncodedFrame(bytes(packet), packet.pts, True))
    return out


# --- RTP packetization -------------------------------------------------------------------


def rtp(pt: int, seq: int, ts: int, ssrc: int, marker: bool, payload: bytes, ext: bool) -> bytes:
    """One RTP packet; ``ext`` adds a one-byte header extension (abs-send-time-like)."""
    header = struct.pack(
        "!BBHII",
        0x90 if ext else 0x80,
        (0x80 if marker else 0) | pt,
        seq & 0xFFFF,
        ts & 0xFFFFFFFF,
        ssrc,
    )
    if ext:
        header += struct.pack("!HH", 0xBEDE, 1) + bytes([0x22, 1, 2, 3])
    return header + payload


def vp8_payloads(data: bytes, picture_id: int, mtu: int = 500) -> list[bytes]:
    """RFC 7741 with a 15-bit picture id (X=1, I=1, M=1), S=1 on the first packet."""
    chunks = [data[i : i + mtu] for i in range(0, len(data), mtu)]
    out = []
    for i, chunk in enumerate(chunks):
        b0 = 0x80 | (0x10 if i == 0 else 0)
        pid = 0x8000 | (picture_id & 0x7FFF)
        out.append(bytes([b0, 0x80]) + struct.pack("!H", pid) + chunk)
    return out


def split_annex_b(data: bytes) -> list[bytes]:
    nals = []
    for part in data.split(b"\x00\x00\x01"):
        part = part.rstrip(b"\x00")  # a NAL never ends in 0x00; 4-byte start codes do
        if part:
            nals.append(part)
    return nals


def h264_payloads(data: bytes, mtu: int = 500) -> list[bytes]:
    """RFC 6184 packetization-mode 1: small NALs in STAP-A, big ones in FU-A."""
    out: list[bytes] = []
    pending: list[bytes] = []

    def flush() -> None:
        if len(pending) == 1:
            out.append(pending[0])
        elif pending:
            nri = max(n[0] & 0x60 for n in pending)
            out.append(bytes([nri | 24]) + b"".join(struct.pack("!H", len(n)) + n for n in pending))
        pending.clear()

    for nal in split_annex_b(data):
        if len(nal) <= 100:
            pending.append(nal)
            continue
        flush()
        if len(nal) <= mtu:
            out.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | 28
        body = nal[1:]
        pieces = [body[i : i + mtu] for i in range(0, len(body), mtu)]
        for i, piece in enumerate(pieces):
            fu = (nal[0] & 0x1F) | (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0)
            out.append(bytes([indicator, fu]) + piece)
    flush()
    return out


class RtpPublisher:
    """Turns encoded frames into the RTP packets a consumer would hand the recorder:
    continuous sequence numbers (starting near the wrap) and timestamps from ``ts_base``."""

    def __init__(
        self, codec: Codec, ssrc: int = 0x1234, seq: int = 65500, ts_base: int = 4294000000
    ) -> None:
        self.codec = codec
        self.ssrc = ssrc
        self.seq = seq
        self.ts_base = ts_base
        self.picture_id = 0

    def packets(self, frame: EncodedFrame) -> list[bytes]:
        mime = self.codec.mime_type
        if mime == "video/VP8":
            payloads = vp8_payloads(frame.data, self.picture_id)
            self.picture_id += 1
        elif mime == "video/H264":
            payloads = h264_payloads(frame.data)
        else:
            payloads = [frame.data]
        out = []
        ts = self.ts_base + frame.timestamp
        for i, payload in enumerate(payloads):
            last = i == len(payloads) - 1
            out.append(
                rtp(self.codec.payload_type, self.seq, ts, self.ssrc, last, payload, ext=i == 0)
            )
            self.seq = (self.seq + 1) & 0xFFFF
        return out

    def stream(self, frames: Iterable[EncodedFrame]) -> Iterator[tuple[EncodedFrame, bytes]]:
        for frame in frames:
            for packet in self.packets(frame):
                yield frame, packet


class FakeClock:
    """Wall clock the test moves by hand (the recorder stamps arrivals with it)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

"""A pre-encoded test clip: VP8 or H.264 video (moving picture, visible clock) + an Opus tone.

Encoded ONCE with PyAV into a cache directory (a few seconds of CPU), then only read back:
synthetic publishers packetize these frames and never encode at run time.

File format (``.tkclip``): a sequence of records ``flags:u8 | length:u32be | data``; flag bit 0
marks a keyframe (every Opus packet is one).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

FORMAT_VERSION = 1
_RECORD = struct.Struct("!BI")


@dataclass(frozen=True, slots=True)
class VideoSpec:
    width: int = 640
    height: int = 480
    fps: int = 30
    seconds: int = 10
    bitrate: int = 900_000
    gop_frames: int = 60  # one keyframe every 2 s; publishers jump to one on PLI
    codec: str = "vp8"  # vp8 | h264 (constrained baseline, Annex B)

    @property
    def key(self) -> str:
        return (
            f"{self.codec}-{self.width}x{self.height}-{self.fps}fps-{self.seconds}s-"
            f"{self.bitrate // 1000}k-g{self.gop_frames}-v{FORMAT_VERSION}"
        )


MAIN = VideoSpec()
# The low copy at the web client's low-layer bitrate (web/js/client.js: ~150 kbps), so it
# fits a capped rural link (docs/benchmarks.md "Poor networks") as the real one does.
LOW = VideoSpec(width=320, height=240, bitrate=150_000)
H264_MAIN = VideoSpec(codec="h264")
H264_LOW = VideoSpec(width=320, height=240, bitrate=150_000, codec="h264")


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    keyframe: bool


def default_cache_dir() -> Path:
    """``$TONGKE_CACHE_DIR/clips`` or ``~/.cache/tongke/clips``."""
    base = os.environ.get("TONGKE_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "tongke"
    return root / "clips"


def load_video(spec: VideoSpec = MAIN, cache_dir: Path | None = None) -> list[EncodedFrame]:
    """The clip's encoded frames in order (encoding them into the cache first if needed)."""
    path = (cache_dir or default_cache_dir()) / f"{spec.key}.tkclip"
    if not path.exists():
        _write_atomically(path, _encode_video(spec))
    return _read(path)


def load_audio(seconds: int = 10, cache_dir: Path | None = None) -> list[EncodedFrame]:
    """The clip's Opus packets, 20 ms each, 48 kHz stereo."""
    path = (cache_dir or default_cache_dir()) / f"opus-tone-{seconds}s-v{FORMAT_VERSION}.tkclip"
    if not path.exists():
        _write_atomically(path, _encode_audio(seconds))
    return _read(path)


def _read(path: Path) -> list[EncodedFrame]:
    blob = path.read_bytes()
    frames: list[EncodedFrame] = []
    pos = 0
    while pos < len(blob):
        flags, length = _RECORD.unpack_from(blob, pos)
        pos += _RECORD.size
        frames.append(EncodedFrame(blob[pos : pos + length], bool(flags & 1)))
        pos += length
    if not frames:
        raise ValueError(f"Clip file {path} holds no frames.")
    return frames


def _write_atomically(path: Path, frames: list[EncodedFrame]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        for frame in frames:
            f.write(_RECORD.pack(1 if frame.keyframe else 0, len(frame.data)))
            f.write(frame.data)
    tmp.replace(path)


# Seven-segment layout: segment -> (x, y, w, h) in a 6x10 cell grid.
_SEGMENTS = {
    "a": (1, 0, 4, 1),
    "b": (5, 1, 1, 4),
    "c": (5, 5, 1, 4),
    "d": (1, 9, 4, 1),
    "e": (0, 5, 1, 4),
    "f": (0, 1, 1, 4),
    "g": (1, 4, 4, 1),
}
_DIGITS = ["abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg"]


def _fill(plane: bytearray, stride: int, x: int, y: int, w: int, h: int, value: int) -> None:
    line = bytes([value]) * w
    for row in range(y, y + h):
        start = row * stride + x
        plane[start : start + w] = line


def _draw_clock(plane: bytearray, stride: int, text: str, unit: int) -> None:
    x = unit
    for ch in text:
        if ch.isdigit():
            _fill(plane, stride, x - unit // 2, unit // 2, 7 * unit, 11 * unit, 16)
            for seg in _DIGITS[int(ch)]:
                sx, sy, sw, sh = _SEGMENTS[seg]
                _fill(plane, stride, x + sx * unit, unit + sy * unit, sw * unit, sh * unit, 235)
        else:  # the dot
            _fill(plane, stride, x + unit, 10 * unit, unit, unit, 235)
        x += 7 * unit


def _picture(spec: VideoSpec, index: int) -> av.VideoFrame:
    w, h = spec.width, spec.height
    ramp = bytes((x * 3 + (x // 16) * 40) & 0xFF for x in range(w)) * 2
    y_plane = bytearray(w * h)
    shift = index * 4
    for row in range(h):
        off = (shift + row // 4) % w
        y_plane[row * w : (row + 1) * w] = ramp[off : off + w]
    # A box bouncing left to right, and the clock (seconds.tenths of clip time).
    box = h // 6
    span = w - box
    pos = (index * 8) % (2 * span)
    bx = pos if pos < span else 2 * span - pos
    _fill(y_plane, w, bx, h - 2 * box, box, box, 235)
    t = index / spec.fps
    _draw_clock(y_plane, w, f"{int(t) % 100:02d}.{int(t * 10) % 10}", max(2, w // 80))
    frame = av.VideoFrame(w, h, "yuv420p")
    frame.planes[0].update(bytes(y_plane))
    chroma = (w // 2) * (h // 2)
    frame.planes[1].update(bytes([(96 + index) & 0xFF]) * chroma)
    frame.planes[2].update(bytes([160]) * chroma)
    return frame


def _is_h264_keyframe(data: bytes) -> bool:
    # Annex B: an IDR slice (NAL type 5) anywhere in the access unit.
    return any(
        (data[i + 3] & 0x1F) == 5 for i in range(len(data) - 3) if data[i : i + 3] == b"\0\0\1"
    )


def _encode_video(spec: VideoSpec) -> list[EncodedFrame]:
    if spec.codec == "h264":
        return _encode(spec, _h264_context(spec), _is_h264_keyframe)
    if spec.codec != "vp8":
        raise ValueError(f"Clip codec must be vp8 or h264, got {spec.codec!r}.")
    return _encode(spec, _vp8_context(spec), lambda data: (data[0] & 1) == 0)


def _h264_context(spec: VideoSpec) -> av.CodecContext:
    codec = av.CodecContext.create("libx264", "w")
    codec.width = spec.width
    codec.height = spec.height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, spec.fps)
    codec.framerate = Fraction(spec.fps, 1)
    codec.bit_rate = spec.bitrate
    codec.gop_size = spec.gop_frames
    codec.profile = "Baseline"
    codec.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "keyint_min": str(spec.gop_frames),
        "sc_threshold": "0",
        "bf": "0",
        "repeat-headers": "1",
    }
    return codec


def _vp8_context(spec: VideoSpec) -> av.CodecContext:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = spec.width
    codec.height = spec.height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, spec.fps)
    codec.framerate = Fraction(spec.fps, 1)
    codec.bit_rate = spec.bitrate
    codec.gop_size = spec.gop_frames
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "keyint_min": str(spec.gop_frames),
        "minrate": str(spec.bitrate),
        "maxrate": str(spec.bitrate),
        "bufsize": str(spec.bitrate),
    }
    return codec


def _encode(
    spec: VideoSpec, codec: av.CodecContext, is_key: Callable[[bytes], bool]
) -> list[EncodedFrame]:
    frames: list[EncodedFrame] = []
    total = spec.fps * spec.seconds
    for index in range(total):
        picture = _picture(spec, index)
        picture.pts = index
        picture.time_base = codec.time_base
        # Force keyframes on the GOP grid so publishers can jump to one on PLI.
        if index % spec.gop_frames == 0:
            picture.pict_type = av.video.frame.PictureType.I
        for packet in codec.encode(picture):
            data = bytes(packet)
            frames.append(EncodedFrame(data, is_key(data)))
    for packet in codec.encode(None):
        data = bytes(packet)
        frames.append(EncodedFrame(data, is_key(data)))
    if not frames or not frames[0].keyframe:
        raise RuntimeError(f"The {spec.codec} encoder did not start the clip with a keyframe.")
    return frames


def _encode_audio(seconds: int) -> list[EncodedFrame]:
    rate, samples_per_packet = 48_000, 960
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = rate
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 48_000
    packets: list[EncodedFrame] = []
    total = rate * seconds
    for start in range(0, total, samples_per_packet):
        pcm = bytearray()
        for n in range(start, start + samples_per_packet):
            # 440 Hz, with a 100 ms 880 Hz beep at every full second.
            freq = 880.0 if (n % rate) < rate // 10 else 440.0
            value = int(6000 * math.sin(2 * math.pi * freq * n / rate))
            pcm += struct.pack("<hh", value, value)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples_per_packet)
        frame.planes[0].update(bytes(pcm))
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        packets.extend(EncodedFrame(bytes(p), True) for p in codec.encode(frame))
    packets.extend(EncodedFrame(bytes(p), True) for p in codec.encode(None))
    return packets

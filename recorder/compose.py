"""Building blocks of the rendition: decoded track cursors, the title card, the inset.

Everything here runs in the rendition's child process (``recorder.rendition``); it decodes
the per-track Matroska files and works on PIL images at the output size.
"""

from __future__ import annotations

import array
import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

AUDIO_RATE = 48000
BYTES_PER_SAMPLE = 4  # s16 stereo, interleaved
HOLD_S = 1.0  # how long a video's last frame stays up after its track ends
BACKGROUND = (16, 24, 40)
TEXT = (240, 240, 240)

# Fonts tried when fontconfig finds no Chinese font (the card still renders, with boxes
# for characters the font lacks).
_FALLBACK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@dataclass(frozen=True, slots=True)
class TrackSource:
    """A recorded track file and where its t=0 sits on the lesson timeline (seconds)."""

    path: Path
    offset_s: float = 0.0


def inset_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the on-stage classroom inset: 30% wide, bottom right, even sizes."""
    w = (width * 3 // 10) & ~1
    h = (w * height // width) & ~1
    margin = (width // 40) & ~1
    return width - w - margin, height - h - margin, w, h


class VideoCursor:
    """Frames of one video track, looked up by lesson time, decoded forward only."""

    def __init__(self, source: TrackSource, size: tuple[int, int]) -> None:
        self._offset = source.offset_s
        self._size = size
        self._container = av.open(str(source.path))
        self._frames = self._decode()
        self._current: av.VideoFrame | None = None
        self._current_t = 0.0
        self._next: av.VideoFrame | None = next(self._frames, None)
        self._image: Image.Image | None = None
        self._image_of: av.VideoFrame | None = None
        self.decode_errors = 0

    def _decode(self) -> Iterator[av.VideoFrame]:
        stream = self._container.streams.video[0]
        for packet in self._container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                self.decode_errors += 1  # a damaged frame: keep the previous picture

    def _time(self, frame: av.VideoFrame) -> float:
        return (frame.time or 0.0) + self._offset

    def image_at(self, t: float) -> Image.Image | None:
        """The picture showing at lesson time ``t`` (resized), or None if none."""
        while self._next is not None and self._time(self._next) <= t:
            self._current = self._next
            self._current_t = self._time(self._next)
            self._next = next(self._frames, None)
        if self._current is None:
            return None
        if self._next is None and t - self._current_t > HOLD_S:
            return None
        if self._image_of is not self._current:
            frame = self._current.reformat(self._size[0], self._size[1], format="rgb24")
            self._image = frame.to_image()
            self._image_of = self._current
        return self._image

    def close(self) -> None:
        self._container.close()


def video_size(path: Path) -> tuple[int, int]:
    """The picture size a track file declares (read from its header, nothing decoded)."""
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height


class AudioCursor:
    """One audio track as s16 stereo 48 kHz samples on the lesson timeline; silence
    before it starts, after it ends and in its gaps."""

    def __init__(self, source: TrackSource) -> None:
        self._offset = source.offset_s
        self._container = av.open(str(source.path))
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        self._chunks = self._decode()
        self._buf = bytearray()
        self._buf_start = 0  # lesson sample index of self._buf[0]
        self._done = False
        self.decode_errors = 0

    def _decode(self) -> Iterator[tuple[int, bytes]]:
        stream = self._container.streams.audio[0]
        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.decode_errors += 1
                continue
            for frame in frames:
                start = round(((frame.time or 0.0) + self._offset) * AUDIO_RATE)
                data = b"".join(
                    bytes(out.planes[0])[: out.samples * BYTES_PER_SAMPLE]
                    for out in self._resampler.resample(frame)
                )
                yield start, data

    def read(self, start: int, count: int) -> bytes:
        """``count`` samples from lesson sample ``start`` on (reads must move forward)."""
        end = start + count
        while not self._done and self._buf_start + len(self._buf) // BYTES_PER_SAMPLE < end:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
                break
            self._place(*chunk)
        out = bytearray(count * BYTES_PER_SAMPLE)
        lo = max(start, self._buf_start)
        hi = min(end, self._buf_start + len(self._buf) // BYTES_PER_SAMPLE)
        if hi > lo:
            src = (lo - self._buf_start) * BYTES_PER_SAMPLE
            dst = (lo - start) * BYTES_PER_SAMPLE
            size = (hi - lo) * BYTES_PER_SAMPLE
            out[dst : dst + size] = self._buf[src : src + size]
        # Forget what was read.
        drop = max(0, min(end - self._buf_start, len(self._buf) // BYTES_PER_SAMPLE))
        del self._buf[: drop * BYTES_PER_SAMPLE]
        self._buf_start += drop
        return bytes(out)

    def _place(self, start: int, data: bytes) -> None:
        buf_end = self._buf_start + len(self._buf) // BYTES_PER_SAMPLE
        if not self._buf and start >= buf_end:
            self._buf_start = start  # nothing buffered: the buffer begins here
            self._buf += data
            return
        if start > buf_end:  # a gap (lost packets): fill with silence
            self._buf += bytes((start - buf_end) * BYTES_PER_SAMPLE)
        elif start < buf_end:  # overlap: keep what we have
            data = data[(buf_end - start) * BYTES_PER_SAMPLE :]
        self._buf += data

    def close(self) -> None:
        self._container.close()


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two s16 buffers of equal length, clipping."""
    x = array.array("h", a)
    y = array.array("h", b)
    return array.array(
        "h", [min(32767, max(-32768, p + q)) for p, q in zip(x, y, strict=True)]
    ).tobytes()


@lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """Path of a font that has Chinese glyphs, or None (logged once)."""
    if shutil.which("fc-list"):
        try:
            out = subprocess.run(
                ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
        if files:
            return files[0]
    for path in _FALLBACK_FONTS[:2]:
        if Path(path).exists():
            return path
    logger.warning("no Chinese font found: title cards will show boxes (install fonts-noto-cjk)")
    return None


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = find_cjk_font() or next((p for p in _FALLBACK_FONTS if Path(p).exists()), None)
    if path is not None:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def title_card(size: tuple[int, int], lines: list[str]) -> Image.Image:
    """The 一师一优课 style card: course title large, then grade, textbook, school, teacher;
    a line too wide for the picture is set in a smaller size."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    texts = []
    for i, line in enumerate(lines):
        if not line:
            continue
        points = max(10, height // 10 if i == 0 else height // 18)
        font = _font(points)
        while points > 8 and draw.textlength(line, font=font) > width * 0.9:
            points = points * 9 // 10
            font = _font(points)
        texts.append((line, font))
    heights = [draw.textbbox((0, 0), text, font=font)[3] for text, font in texts]
    gap = height // 30
    y = (height - sum(heights) - gap * (len(texts) - 1)) // 2
    for (text, font), h in zip(texts, heights, strict=True):
        w = draw.textlength(text, font=font)
        draw.text(((width - w) / 2, y), text, font=font, fill=TEXT)
        y += h + gap
    draw.rectangle((0, height - height // 60, width, height), fill=(200, 40, 40))
    return image

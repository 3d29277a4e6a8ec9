"""The library rendition of a recorded lesson: one MP4 (H.264 + AAC, faststart), a poster
JPEG and a few thumbnails, made from the per-track files after the lesson.

The picture is the lead's main camera at the output size with the on-stage classroom in
an inset (bottom right) following the stage timeline; the first ``TitleCard.seconds``
show the title card (course, grade, textbook version, school, teacher) instead of the
picture, while the lesson's sound already plays, so rendition time equals lesson time and
evaluation notes anchored to the lesson line up with the video. The sound is the lead's,
mixed with the on-stage classroom's while it is on stage.

It also makes the per-track files playable in every browser: an H.264 track (Matroska)
gets an MP4 copy, remuxed without re-encoding (``browser_copy``); VP8 and Opus tracks are
WebM already and need nothing.

``render`` is CPU-heavy and blocking: ``recorder.jobs`` runs it in a child process at
low priority; ``render`` itself only calls ``progress(fraction)`` now and then.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from recorder.compose import (
    AUDIO_RATE,
    AudioCursor,
    TrackSource,
    VideoCursor,
    inset_box,
    mix,
    title_card,
    video_size,
)
from recorder.sidecar import file_sha256, read_sidecar

logger = logging.getLogger(__name__)

Stage = Sequence[tuple[float, str | None]]
AAC_FRAME = 1024
MAX_SIZE = (1280, 720)
THUMB_WIDTH = 320


@dataclass(frozen=True, slots=True)
class TitleCard:
    course: str  # the lesson title, e.g. 《圆的面积》
    grade: str = ""  # 学段/年级, e.g. 小学六年级
    textbook: str = ""  # 教材版本 and 册次, e.g. 人教版 六年级上册
    school: str = ""
    teacher: str = ""
    seconds: float = 4.0

    def lines(self) -> list[str]:
        return [self.course, self.grade, self.textbook, self.school, self.teacher]


@dataclass(frozen=True, slots=True)
class RenditionSpec:
    """Everything a rendition needs; plain values so it pickles into the child process.

    ``stage`` is the timeline of who is on stage: (lesson time in seconds, classroom key
    in ``classroom_video``/``classroom_audio``, or None for nobody), sorted by time.
    """

    output_dir: Path
    duration_s: float
    title: TitleCard
    lead_video: TrackSource | None = None
    lead_audio: TrackSource | None = None
    classroom_video: tuple[tuple[str, TrackSource], ...] = ()
    classroom_audio: tuple[tuple[str, TrackSource], ...] = ()
    stage: tuple[tuple[float, str | None], ...] = ()
    size: tuple[int, int] | None = None  # None: the lead's size, at most 1280x720
    fps: int = 25
    thumbnails: int = 4
    crf: int = 23
    preset: str = "veryfast"
    threads: int = 1
    name: str = "lesson"
    # (track file, MP4 to make from it without re-encoding): the H.264 tracks' copies.
    copies: tuple[tuple[Path, Path], ...] = ()


@dataclass(frozen=True, slots=True)
class RenditionResult:
    video: Path
    poster: Path
    thumbnails: tuple[Path, ...]
    duration_s: float
    width: int
    height: int
    size: int
    sha256: str
    decode_errors: int = field(default=0)
    copies: tuple[tuple[Path, Path], ...] = ()  # (track file, its MP4 copy) made


def track_source(sidecar: Path, lesson_start: float) -> TrackSource:
    """A track file placed on the lesson timeline from its sidecar's ``started_at``."""
    data = read_sidecar(sidecar)
    started = data.get("started_at") or lesson_start
    return TrackSource(sidecar.with_name(data["file"]), max(0.0, started - lesson_start))


def output_size(spec: RenditionSpec) -> tuple[int, int]:
    if spec.size is not None:
        width, height = spec.size
    elif spec.lead_video is not None:
        width, height = video_size(spec.lead_video.path)
        scale = min(1.0, MAX_SIZE[0] / width, MAX_SIZE[1] / height)
        width, height = round(width * scale), round(height * scale)
    else:
        width, height = MAX_SIZE
    return width & ~1, height & ~1


def on_stage(stage: Stage, t: float) -> str | None:
    """Who is on stage at lesson time ``t`` (None: nobody)."""
    who = None
    for at, key in stage:
        if at > t:
            break
        who = key
    return who


def render(spec: RenditionSpec, progress: Callable[[float], None] | None = None) -> RenditionResult:
    """Make the rendition files in ``spec.output_dir``; blocking, CPU-heavy."""
    report = progress or (lambda _fraction: None)
    out_dir = Path(spec.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = output_size(spec)
    final = out_dir / f"{spec.name}.mp4"
    tmp = out_dir / f"{spec.name}.mp4.part"
    cursors = _Cursors(spec, (width, height))
    try:
        stills = _encode(spec, tmp, (width, height), cursors, report)
    finally:
        cursors.close()
    os.replace(tmp, final)
    poster = out_dir / f"{spec.name}-poster.jpg"
    stills[0].save(poster, "JPEG", quality=85)
    thumbs = []
    for i, image in enumerate(stills[1:]):
        thumb = out_dir / f"{spec.name}-thumb-{i + 1}.jpg"
        image.resize((THUMB_WIDTH, THUMB_WIDTH * height // width)).save(thumb, "JPEG", quality=80)
        thumbs.append(thumb)
    copies = []
    for source, target in spec.copies:
        try:
            browser_copy(source, target)
            copies.append((source, target))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            # The track stays playable where Matroska plays; the rendition is still good.
            logger.warning("no MP4 copy of %s: %s", source, exc)
    report(1.0)
    return RenditionResult(
        final,
        poster,
        tuple(thumbs),
        spec.duration_s,
        width,
        height,
        final.stat().st_size,
        file_sha256(final),
        cursors.decode_errors,
        tuple(copies),
    )


def browser_copy(source: Path, target: Path) -> int:
    """Remux one track file into an MP4 (``+faststart``, so it seeks at once over Range
    requests) without decoding: every browser plays H.264 in MP4, not all play Matroska.
    Written as ``.part``, then renamed; returns the packets copied. Blocking."""
    tmp = target.with_name(target.name + ".part")
    packets = 0
    with av.open(str(source)) as inp:
        if not inp.streams.video:
            raise ValueError(f"{source.name} has no video stream.")
        in_stream = inp.streams.video[0]
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            out_stream = out.add_stream_from_template(in_stream)
            for packet in inp.demux(in_stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream packet
                if packet.dts is None:
                    # Matroska keeps no decode times; WebRTC H.264 (constrained baseline)
                    # has no B-frames, so decode order is presentation order.
                    packet.dts = packet.pts
                packet.stream = out_stream
                out.mux(packet)
                packets += 1
    if not packets:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{source.name} has no packets to copy.")
    os.replace(tmp, target)
    return packets


class _Cursors:
    def __init__(self, spec: RenditionSpec, size: tuple[int, int]) -> None:
        _, _, w, h = inset_box(*size)
        self.lead = VideoCursor(spec.lead_video, size) if spec.lead_video else None
        self.lead_audio = AudioCursor(spec.lead_audio) if spec.lead_audio else None
        # A classroom may have several segments (on stage, off, on again): keep them all.
        self.insets = [(key, VideoCursor(src, (w, h))) for key, src in spec.classroom_video]
        self.audio = [(key, AudioCursor(src)) for key, src in spec.classroom_audio]
        self.decode_errors = 0

    def all(self) -> list[VideoCursor | AudioCursor]:
        return [
            c
            for c in (
                self.lead,
                self.lead_audio,
                *(c for _, c in self.insets),
                *(c for _, c in self.audio),
            )
            if c is not None
        ]

    def close(self) -> None:
        for cursor in self.all():
            self.decode_errors += cursor.decode_errors
            cursor.close()


def _encode(
    spec: RenditionSpec,
    path: Path,
    size: tuple[int, int],
    cursors: _Cursors,
    report: Callable[[float], None],
) -> list[Image.Image]:
    width, height = size
    card = title_card(size, spec.title.lines())
    black = card.copy()
    black.paste((0, 0, 0), (0, 0, width, height))
    x, y, _, _ = inset_box(width, height)
    total_frames = max(1, round(spec.duration_s * spec.fps))
    total_samples = round(spec.duration_s * AUDIO_RATE)
    content_start = min(spec.title.seconds, spec.duration_s)
    still_times = [content_start + (spec.duration_s - content_start) * 0.1] + [
        content_start + (spec.duration_s - content_start) * (k + 0.5) / spec.thumbnails
        for k in range(spec.thumbnails)
    ]
    stills: list[Image.Image | None] = [None] * len(still_times)

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, spec.fps)
        video.codec_context.gop_size = spec.fps * 2
        video.codec_context.thread_count = spec.threads
        video.codec_context.options = {"preset": spec.preset, "crf": str(spec.crf)}
        audio = out.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        audio.codec_context.bit_rate = 96_000
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        sample = 0
        last_report = -1
        for i in range(total_frames):
            t = i / spec.fps
            # Sound up to the end of this video frame, so the muxer interleaves closely.
            until = min(total_samples, round((i + 1) * AUDIO_RATE / spec.fps))
            while sample < until:
                count = min(AAC_FRAME, total_samples - sample)
                pcm = _audio(cursors, spec.stage, sample, count)
                frame = av.AudioFrame(format="s16", layout="stereo", samples=count)
                frame.planes[0].update(pcm)
                frame.sample_rate = AUDIO_RATE
                frame.pts = sample
                frame.time_base = Fraction(1, AUDIO_RATE)
                for converted in resampler.resample(frame):
                    out.mux(audio.encode(converted))
                sample += count
            image = _picture(cursors, spec.stage, t, card, black, content_start, (x, y))
            for k, at in enumerate(still_times):
                if stills[k] is None and t >= at:
                    stills[k] = image.copy()
            frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            out.mux(video.encode(frame))
            done = i * 100 // total_frames
            if done != last_report:
                last_report = done
                report(done / 100 * 0.98)
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    last = image
    return [s if s is not None else last for s in stills]


def _picture(
    cursors: _Cursors,
    stage: Stage,
    t: float,
    card: Image.Image,
    black: Image.Image,
    content_start: float,
    at: tuple[int, int],
) -> Image.Image:
    if t < content_start:
        return card
    lead = cursors.lead.image_at(t) if cursors.lead else None
    image = lead.copy() if lead is not None else black.copy()
    key = on_stage(stage, t)
    shown = False
    # Classrooms not on stage still advance so their cursors stay cheap to move.
    for name, cursor in cursors.insets:
        inset = cursor.image_at(t)
        if name == key and inset is not None and not shown:
            image.paste(inset, at)
            shown = True
    return image


def _audio(cursors: _Cursors, stage: Stage, start: int, count: int) -> bytes:
    pcm = cursors.lead_audio.read(start, count) if cursors.lead_audio else bytes(count * 4)
    key = on_stage(stage, start / AUDIO_RATE)
    for name, cursor in cursors.audio:
        other = cursor.read(start, count)
        if name == key:
            pcm = mix(pcm, other)
    return pcm

"""A synthetic lesson recorded through TrackRecorders: the lead's camera and microphone and
two classrooms' cameras (solid green and magenta), with a stage timeline."""

from __future__ import annotations

from pathlib import Path

from recorder_media import OPUS, VP8, EncodedFrame, FakeClock, RtpPublisher

from recorder.rendition import RenditionSpec, TitleCard, track_source
from recorder.sidecar import TrackInfo
from recorder.track_writer import TrackRecorder

LESSON_START = 1_800_000_000.0


def record_track(
    directory: Path,
    producer: str,
    codec,
    frames: list[EncodedFrame],
    start_offset: float,
    classroom: str,
) -> Path:
    clock = FakeClock(LESSON_START + start_offset)
    source = "microphone" if codec is OPUS else "camera"
    recorder = TrackRecorder(
        directory / f"{producer}.mkv", codec, TrackInfo(producer, source, classroom), clock=clock
    )
    base = clock.now
    first = frames[0].timestamp
    for frame, packet in RtpPublisher(codec).stream(frames):
        clock.now = base + (frame.timestamp - first) / codec.clock_rate
        recorder.send_rtp(packet)
    return recorder.finish_sync().sidecar


def record_lesson(
    directory: Path,
    lead: list[EncodedFrame],
    lead_audio: list[EncodedFrame],
    room_a: list[EncodedFrame],
    room_b: list[EncodedFrame],
) -> dict[str, Path]:
    return {
        "lead": record_track(directory, "lead-camera", VP8, lead, 0.0, "lead-room"),
        "lead-mic": record_track(directory, "lead-mic", OPUS, lead_audio, 0.0, "lead-room"),
        "room-a": record_track(directory, "a-camera", VP8, room_a, 0.0, "room-a"),
        "room-b": record_track(directory, "b-camera", VP8, room_b, 0.5, "room-b"),
    }


def lesson_spec(
    sidecars: dict[str, Path],
    output: Path,
    duration: float,
    stage: tuple[tuple[float, str | None], ...],
) -> RenditionSpec:
    return RenditionSpec(
        output_dir=output,
        duration_s=duration,
        title=TitleCard(
            "《圆的面积》", "小学六年级 数学", "人教版 六年级上册", "城关小学", "李老师", 2.0
        ),
        lead_video=track_source(sidecars["lead"], LESSON_START),
        lead_audio=track_source(sidecars["lead-mic"], LESSON_START),
        classroom_video=(
            ("room-a", track_source(sidecars["room-a"], LESSON_START)),
            ("room-b", track_source(sidecars["room-b"], LESSON_START)),
        ),
        stage=stage,
        thumbnails=3,
    )

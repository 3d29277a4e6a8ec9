from __future__ import annotations

import asyncio
import os
from pathlib import Path

import av
import pytest
from recorder_media import (
    GREEN,
    LEAD_BLUE,
    OPUS,
    VP8,
    EncodedFrame,
    FakeClock,
    RtpPublisher,
)

from recorder.compose import inset_box
from recorder.lesson import LessonRecording, read_stage, recover, rendition_spec
from recorder.rendition import TitleCard, render
from recorder.sidecar import RecordingState, read_sidecar


async def test_a_lesson_session_records_tracks_stage_changes_and_renders(
    tmp_path: Path,
    vp8_clip: list[EncodedFrame],
    opus_clip: list[EncodedFrame],
    green_clip: list[EncodedFrame],
) -> None:
    clock = FakeClock()
    start = clock.now
    lesson = await LessonRecording.open(tmp_path, "lesson-7", "lead-room", clock=clock)
    camera = lesson.add_track("cam", VP8, source="camera", classroom="lead-room")
    mic = lesson.add_track("mic", OPUS, source="microphone", classroom="lead-room")
    lesson.set_stage(None)
    cam_out, mic_out = RtpPublisher(VP8), RtpPublisher(OPUS, ssrc=2)
    room_out = RtpPublisher(VP8, ssrc=3)
    room = None
    timeline = sorted(
        [(f.timestamp / 90000, "cam", f) for f in vp8_clip[:75]]
        + [(max(0, f.timestamp) / 48000, "mic", f) for f in opus_clip[:150]]
        + [(1.0 + f.timestamp / 90000, "room", f) for f in green_clip[:25]],
        key=lambda item: item[0],
    )
    for t, which, frame in timeline:
        clock.now = start + t
        if which == "room" and room is None:
            room = lesson.add_track("room-cam", VP8, source="camera", classroom="room-a")
            lesson.set_stage("room-a")
        if which == "room":
            for packet in room_out.packets(frame):
                room.send_rtp(packet)
            if frame is green_clip[24]:
                clock.now = start + 2.0
                await lesson.remove_track("room-cam")
                lesson.set_stage(None)
        else:
            out, sink = (cam_out, camera) if which == "cam" else (mic_out, mic)
            for packet in out.packets(frame):
                sink.send_rtp(packet)
        await asyncio.sleep(0)
    clock.now = start + 3.0
    summary = await lesson.finish()

    assert summary.state == RecordingState.FINISHED
    assert summary.duration_s == pytest.approx(3.0)
    assert sorted(t.path.name for t in summary.tracks) == [
        "001-cam.webm",
        "002-mic.webm",
        "003-room-cam.webm",
    ]
    assert read_sidecar(lesson.directory / "lesson.json")["state"] == "finished"
    assert read_stage(lesson.directory, start) == ((0.0, None), (1.0, "room-a"), (2.0, None))
    assert recover(tmp_path) == ([], [])  # nothing to repair after a clean finish

    spec = rendition_spec(lesson.directory, TitleCard("t", seconds=0.0), thumbnails=1)
    assert spec.lead_video is not None and spec.lead_video.path.name == "001-cam.webm"
    assert [(key, src.offset_s) for key, src in spec.classroom_video] == [("room-a", 1.0)]
    result = render(spec)
    x, y, w, h = inset_box(result.width, result.height)
    seen = {}
    with av.open(str(result.video)) as container:
        for frame in container.decode(container.streams.video[0]):
            for at in (0.5, 1.5, 2.5):
                if at not in seen and frame.time >= at:
                    seen[at] = frame.to_image().getpixel((x + w // 2, y + h // 2))
    near = lambda a, b: all(abs(p - q) < 40 for p, q in zip(a, b, strict=True))  # noqa: E731
    assert near(seen[0.5], LEAD_BLUE) and near(seen[1.5], GREEN) and near(seen[2.5], LEAD_BLUE)


async def test_recording_the_same_producer_twice_is_refused(tmp_path: Path) -> None:
    lesson = LessonRecording(tmp_path, "lesson-8", "lead-room")
    lesson.add_track("cam", VP8, source="camera", classroom="lead-room")
    with pytest.raises(ValueError, match=r"^Producer cam is already being recorded\.$"):
        lesson.add_track("cam", VP8, source="camera", classroom="lead-room")
    assert await lesson.remove_track("unknown") is None
    await lesson.finish()
    await lesson.finish()  # idempotent
    with pytest.raises(RuntimeError, match=r"^Recording of lesson lesson-8 has finished\.$"):
        lesson.add_track("cam2", VP8, source="camera", classroom="lead-room")


async def test_two_sessions_started_in_the_same_second_get_their_own_folders(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    first = LessonRecording(tmp_path, "lesson-9", "lead", clock=clock)
    second = LessonRecording(tmp_path, "lesson-9", "lead", clock=clock)
    assert first.directory != second.directory
    await first.finish()
    await second.finish()


async def test_recovery_leaves_a_session_another_process_records_alone(tmp_path: Path) -> None:
    """Nodes may share one library root: a node starting up must not take another node's
    live session for a crashed one. A session whose process died is recovered."""
    live = await LessonRecording.open(tmp_path, "lesson-live", "lead-room")
    crashed = await LessonRecording.open(tmp_path, "lesson-crashed", "lead-room")
    assert crashed._lock_fd is not None
    os.close(crashed._lock_fd)  # what the kernel does when the recording process dies
    crashed._lock_fd = None

    _, sessions = await asyncio.to_thread(recover, tmp_path)

    assert sessions == [crashed.directory]
    assert read_sidecar(live.directory / "lesson.json")["state"] == "recording"
    assert read_sidecar(crashed.directory / "lesson.json")["state"] == "interrupted"
    await live.finish()
    assert read_sidecar(live.directory / "lesson.json")["state"] == "finished"
    assert await asyncio.to_thread(recover, tmp_path) == ([], [])

"""Child process for the crash tests. ``kill`` mode records a lesson (the lead's VP8 camera
and Opus microphone, a stage change at 1 s) in real time until the parent kills it;
``fsize`` mode records one track into a file size limit, as a full disk would stop it."""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path

from recorder_media import OPUS, VP8, RtpPublisher, encode_opus, encode_video

from recorder.lesson import LessonRecording
from recorder.sidecar import TrackInfo
from recorder.track_writer import TrackRecorder


def record_lesson_until_killed(root: Path) -> None:
    video = [(f.timestamp / 90000, f, 0) for f in encode_video("vp8", 8.0)]
    audio = [(f.timestamp / 48000, f, 1) for f in encode_opus(8.0)]
    lesson = LessonRecording(root, "lesson-1", "lead-room")
    tracks = [
        lesson.add_track("lead-camera", VP8, source="camera", classroom="lead-room"),
        lesson.add_track("lead-mic", OPUS, source="microphone", classroom="lead-room"),
    ]
    publishers = [RtpPublisher(VP8), RtpPublisher(OPUS, ssrc=99)]
    lesson.set_stage(None)
    start = time.monotonic()
    staged = False
    for t, frame, index in sorted(video + audio, key=lambda item: item[0]):
        time.sleep(max(0.0, start + t - time.monotonic()))
        if t >= 1.0 and not staged:
            lesson.set_stage("room-a")
            staged = True
        for packet in publishers[index].packets(frame):
            tracks[index].send_rtp(packet)
        print(json.dumps({"fed": t, "dir": str(lesson.directory)}), flush=True)


def record_into_size_limit(path: Path) -> None:
    errors: list[tuple[str, str]] = []
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (15_000, 15_000))
    recorder = TrackRecorder(
        path,
        VP8,
        TrackInfo("p-lead-camera", "camera", "room-1", lesson_id="lesson-1"),
        on_error=lambda _rec, code, message: errors.append((code, message)),
    )
    publisher = RtpPublisher(VP8)
    for frame in encode_video("vp8", 8.0):
        for packet in publisher.packets(frame):
            recorder.send_rtp(packet)
    summary = recorder.finish_sync()
    print(json.dumps({"state": summary.state, "errors": errors}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "kill":
        record_lesson_until_killed(Path(sys.argv[2]))
    else:
        record_into_size_limit(Path(sys.argv[2]))

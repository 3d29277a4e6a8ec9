from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest
from recorder_media import VP8, EncodedFrame, FakeClock, RtpPublisher

from recorder.lesson import recover, rendition_spec
from recorder.rendition import TitleCard, render
from recorder.repair import find_partial, repair, repair_all
from recorder.sidecar import RecordingState, TrackInfo, read_sidecar, write_sidecar
from recorder.track_writer import TrackRecorder

HERE = Path(__file__).parent


def decode_all(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        count, last = 0, 0.0
        for frame in container.decode(container.streams.video[0]):
            count += 1
            last = frame.time
        return count, last


def test_a_lesson_killed_mid_recording_is_repaired_with_at_most_two_seconds_lost(
    tmp_path: Path,
) -> None:
    child = subprocess.Popen(
        [sys.executable, str(HERE / "writer_child.py"), "kill", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    fed, directory = 0.0, None
    try:
        assert child.stdout is not None
        for line in child.stdout:
            progress = json.loads(line)
            fed, directory = progress["fed"], Path(progress["dir"])
            if fed >= 3.0:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert directory is not None

    assert len(find_partial(tmp_path)) == 2
    repaired, sessions = recover(tmp_path)
    assert sessions == [directory]
    assert find_partial(tmp_path) == []
    for result in repaired:
        assert result.error is None
        assert fed - 2.0 <= result.duration_s <= fed
        with av.open(str(result.path)) as container:
            stream = container.streams[0]
            frames = list(container.decode(stream))
        assert frames and frames[-1].time == pytest.approx(result.duration_s, abs=0.03)
        sidecar = read_sidecar(result.sidecar)
        assert sidecar["state"] == RecordingState.INTERRUPTED
        assert sidecar["started_at"] is not None
    manifest = read_sidecar(directory / "lesson.json")
    assert manifest["state"] == "interrupted"
    assert fed - 2.0 <= manifest["duration_s"] <= fed + 0.5

    # The interrupted lesson still makes a playable rendition with its stage timeline.
    spec = rendition_spec(directory, TitleCard("interrupted", seconds=0.5), thumbnails=1)
    assert [who for _, who in spec.stage] == [None, "room-a"]
    result = render(spec)
    with av.open(str(result.video)) as container:
        assert container.duration / 1_000_000 == pytest.approx(manifest["duration_s"], abs=0.5)
        assert sum(1 for _ in container.decode(container.streams.video[0])) > 0


def test_repairing_a_cut_file_keeps_every_whole_cluster(
    tmp_path: Path, vp8_clip: list[EncodedFrame]
) -> None:
    path = tmp_path / "cut.mkv"
    recorder = TrackRecorder(path, VP8, TrackInfo("p", "camera", "room"), clock=FakeClock())
    for _, packet in RtpPublisher(VP8).stream(vp8_clip):
        recorder.send_rtp(packet)
    recorder.finish_sync()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # as if the process died here
    sidecar = read_sidecar(path.with_suffix(".json"))
    write_sidecar(path.with_suffix(".json"), {**sidecar, "state": "recording"})

    result = repair(path.with_suffix(".json"))
    assert 4.0 < result.duration_s < 9.0
    assert decode_all(path)[0] == result.packets
    assert repair_all(tmp_path) == []  # idempotent: nothing left to repair


def test_a_recording_that_never_got_media_is_marked_interrupted_and_empty(
    tmp_path: Path,
) -> None:
    recorder = TrackRecorder(
        tmp_path / "none.mkv", VP8, TrackInfo("p", "camera", "room"), clock=FakeClock()
    )
    recorder.close()
    recorder._thread.join()
    write_sidecar(recorder.sidecar, {**read_sidecar(recorder.sidecar), "state": "recording"})
    [result] = repair_all(tmp_path)
    assert result.packets == 0 and result.duration_s == 0.0
    assert result.error == "the file is missing or empty"
    assert read_sidecar(recorder.sidecar)["state"] == "interrupted"


def test_foreign_json_files_are_not_taken_for_recordings(tmp_path: Path) -> None:
    (tmp_path / "stage.json").write_text("[]")
    (tmp_path / "broken.json").write_text("{")
    assert find_partial(tmp_path) == []

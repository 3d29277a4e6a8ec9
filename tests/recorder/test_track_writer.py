from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import av
import pytest
from recorder_media import H264, OPUS, VP8, EncodedFrame, FakeClock, RtpPublisher, encode_video

from recorder.sidecar import RecordingState, TrackInfo, file_sha256, read_sidecar
from recorder.track_writer import DISK_FULL, TrackRecorder

HERE = Path(__file__).parent
INFO = TrackInfo("p-1", "camera", "room-1", lesson_id="lesson-1", peer_id="peer-1")


def record(path: Path, codec, frames: list[EncodedFrame], clock: FakeClock) -> TrackRecorder:
    recorder = TrackRecorder(path, codec, INFO, clock=clock)
    publisher = RtpPublisher(codec)
    start = clock.now
    for frame, packet in publisher.stream(frames):
        clock.now = start + frame.timestamp / codec.clock_rate
        recorder.send_rtp(packet)
    return recorder


def decoded(path: Path) -> tuple[int, float]:
    """(frames or samples decoded, duration in seconds from the last frame's time)."""
    with av.open(str(path)) as container:
        stream = container.streams[0]
        count, last = 0, 0.0
        for frame in container.decode(stream):
            count += frame.samples if stream.type == "audio" else 1
            last = frame.time
        return count, last


def test_vp8_recording_decodes_every_frame_with_its_timing(
    tmp_path: Path, vp8_clip: list[EncodedFrame]
) -> None:
    clock = FakeClock()
    summary = record(tmp_path / "p-1.mkv", VP8, vp8_clip, clock).finish_sync()
    assert summary.state == RecordingState.FINISHED
    assert decoded(summary.path) == (250, pytest.approx(9.96, abs=0.002))
    assert summary.frames == 250
    assert summary.started_at == 1_800_000_000.0
    sidecar = read_sidecar(summary.sidecar)
    assert sidecar["state"] == "finished"
    assert sidecar["producer_id"] == "p-1" and sidecar["classroom"] == "room-1"
    assert sidecar["codec"]["mime_type"] == "video/VP8"
    assert sidecar["sha256"] == file_sha256(summary.path)
    assert sidecar["size"] == summary.path.stat().st_size
    assert sidecar["duration_s"] == pytest.approx(9.96)


def test_the_track_file_is_fsynced_about_once_a_second_of_media(
    tmp_path: Path, vp8_clip: list[EncodedFrame]
) -> None:
    summary = record(tmp_path / "p-1.webm", VP8, vp8_clip, FakeClock()).finish_sync()
    # 10 s of arrival time: a sync at 1, 2, ... 9 s, and one after the trailer is written.
    assert read_sidecar(summary.sidecar)["syncs"] == 10
    unsynced = TrackRecorder(tmp_path / "u.webm", VP8, INFO, clock=FakeClock(), sync_interval_s=0)
    publisher = RtpPublisher(VP8)
    for packet in publisher.packets(vp8_clip[0]):
        unsynced.send_rtp(packet)
    assert unsynced.finish_sync().frames == 1
    assert unsynced.stats.syncs == 0


async def test_an_idle_stream_is_fsynced_without_waiting_for_more_media(
    tmp_path: Path, vp8_clip: list[EncodedFrame]
) -> None:
    clock = FakeClock()
    recorder = TrackRecorder(tmp_path / "idle.webm", VP8, INFO, clock=clock)
    publisher = RtpPublisher(VP8)
    for frame in vp8_clip[:15]:  # 0.6 s of media: the 1 s cadence is not reached
        clock.now = 1_800_000_000.0 + frame.timestamp / 90000
        for packet in publisher.packets(frame):
            recorder.send_rtp(packet)
    for _ in range(200):  # the writer syncs after 0.25 s without packets: wait up to 10 s
        if recorder.stats.syncs:
            break
        await asyncio.sleep(0.05)
    written = recorder.stats.frames_written
    assert recorder.stats.syncs == 1 and written > 0
    summary = await recorder.finish()
    assert summary.frames == 15 and recorder.stats.syncs == 2  # + the trailer


def test_vp8_and_opus_are_written_as_webm_and_h264_as_matroska(
    tmp_path: Path, h264_clip: list[EncodedFrame], opus_clip: list[EncodedFrame]
) -> None:
    # The EBML header's DocType: browsers that play WebM check it.
    webm = record(tmp_path / "a.webm", OPUS, opus_clip[:50], FakeClock()).finish_sync()
    mkv = record(tmp_path / "v.mkv", H264, h264_clip[:25], FakeClock()).finish_sync()
    assert b"\x42\x82\x84webm" in webm.path.read_bytes()[:64]
    assert b"\x42\x82\x88matroska" in mkv.path.read_bytes()[:64]


def test_opus_recording_decodes_the_whole_tone(
    tmp_path: Path, opus_clip: list[EncodedFrame]
) -> None:
    summary = record(tmp_path / "mic.mkv", OPUS, opus_clip, FakeClock()).finish_sync()
    samples, _ = decoded(summary.path)
    assert samples == pytest.approx(10 * 48000, abs=960)
    assert summary.frames == 500


def test_h264_recording_decodes_every_access_unit(
    tmp_path: Path, h264_clip: list[EncodedFrame]
) -> None:
    summary = record(tmp_path / "h264.mkv", H264, h264_clip, FakeClock()).finish_sync()
    assert summary.state == RecordingState.FINISHED
    assert decoded(summary.path)[0] == 100


async def test_recorder_is_a_never_blocking_sink_on_the_event_loop(
    tmp_path: Path, vp8_clip: list[EncodedFrame]
) -> None:
    recorder = TrackRecorder(tmp_path / "loop.mkv", VP8, INFO)
    publisher = RtpPublisher(VP8)
    for i, frame in enumerate(vp8_clip[:100]):
        for packet in publisher.packets(frame):
            recorder.send_rtp(packet)
        recorder.send_rtcp(b"\x80\xc8\x00\x06" + bytes(24))
        if i % 25 == 0:
            await asyncio.sleep(0)
    summary = await recorder.finish()
    assert summary.frames == 100
    assert recorder.stats.rtcp == 100
    recorder.send_rtp(b"late")  # after finishing: ignored, no error
    assert recorder.stats.packets == sum(len(RtpPublisher(VP8).packets(f)) for f in vp8_clip[:100])


def test_a_full_disk_stops_the_recording_and_keeps_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "full.mkv"
    result = subprocess.run(
        [sys.executable, str(HERE / "writer_child.py"), "fsize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["state"] == "failed"
    assert [code for code, _ in last["errors"]] == [DISK_FULL]
    assert "full.mkv" in last["errors"][0][1]
    sidecar = read_sidecar(path.with_suffix(".json"))
    assert sidecar["state"] == "failed"
    assert sidecar["error"]["code"] == DISK_FULL
    assert 0 < path.stat().st_size <= 15_000
    frames, _ = decoded(path)
    assert frames > 0


def test_unsupported_codec_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    class Vp9:
        mime_type, clock_rate, payload_type = "video/VP9", 90000, 98

    with pytest.raises(ValueError, match=r"Recording codec video/VP9 is not supported\."):
        TrackRecorder(tmp_path / "x.mkv", Vp9(), INFO)
    assert list(tmp_path.iterdir()) == []


async def test_lost_video_asks_for_a_key_frame_at_once_and_again_while_waiting(
    tmp_path: Path,
) -> None:
    clip = encode_video("vp8", 4.0, gop=1000)  # one keyframe only, like a browser unasked
    requests: list[str] = []
    clock = FakeClock()
    start = clock.now
    recorder = TrackRecorder(
        tmp_path / "k.mkv",
        VP8,
        INFO,
        clock=clock,
        reorder_window=4,
        on_key_frame_needed=lambda: requests.append("pli"),
    )
    publisher = RtpPublisher(VP8)
    for i, frame in enumerate(clip):
        clock.now = start + frame.timestamp / 90000
        packets = publisher.packets(frame)
        for packet in packets[1:] if i == 25 else packets:  # lose a packet at 1 s
            recorder.send_rtp(packet)
        await asyncio.sleep(0)
    summary = await recorder.finish()
    await asyncio.sleep(0)  # callbacks were scheduled on this loop
    assert summary.frames == 25
    # Asked when the loss was found (~1.1 s), then again at ~2.1 s and ~3.1 s.
    assert recorder.stats.key_frame_requests == len(requests) == 3

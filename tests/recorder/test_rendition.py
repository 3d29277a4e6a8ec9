from __future__ import annotations

import math
from array import array
from pathlib import Path

import av
import pytest
from PIL import Image
from recorder_media import GREEN, H264, LEAD_BLUE, MAGENTA, OPUS, EncodedFrame, encode_opus
from synthetic_lesson import LESSON_START, lesson_spec, record_lesson, record_track

from recorder.compose import BACKGROUND, inset_box
from recorder.rendition import RenditionResult, RenditionSpec, TitleCard, render, track_source

STAGE = ((0.0, None), (5.0, "room-a"), (8.0, "room-b"))


@pytest.fixture(scope="module")
def rendition(
    tmp_path_factory: pytest.TempPathFactory,
    vp8_clip: list[EncodedFrame],
    opus_clip: list[EncodedFrame],
    green_clip: list[EncodedFrame],
    magenta_clip: list[EncodedFrame],
) -> tuple[RenditionResult, list[float]]:
    directory = tmp_path_factory.mktemp("lesson")
    sidecars = record_lesson(directory / "tracks", vp8_clip, opus_clip, green_clip, magenta_clip)
    progress: list[float] = []
    result = render(lesson_spec(sidecars, directory / "out", 10.0, STAGE), progress.append)
    return result, progress


def pictures_at(path: Path, times: list[float]) -> dict[float, Image.Image]:
    found: dict[float, Image.Image] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            for t in times:
                if t not in found and frame.time >= t:
                    found[t] = frame.to_image()
    return found


def close_to(
    pixel: tuple[int, int, int], colour: tuple[int, int, int], tolerance: int = 40
) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_rendition_is_an_mp4_with_one_h264_and_one_aac_stream_of_the_lesson_length(
    rendition: tuple[RenditionResult, list[float]],
) -> None:
    result, _ = rendition
    with av.open(str(result.video)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert [s.codec_context.name for s in container.streams.video] == ["h264"]
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
        assert container.duration / 1_000_000 == pytest.approx(10.0, abs=0.5)
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames == 250
    assert (result.width, result.height) == (320, 240)
    assert result.decode_errors == 0


def test_rendition_sound_is_the_lead_tone(rendition: tuple[RenditionResult, list[float]]) -> None:
    result, _ = rendition
    samples = array("f")
    with av.open(str(result.video)) as container:
        for frame in container.decode(container.streams.audio[0]):
            if 3.0 < frame.time < 4.0:
                assert frame.format.name == "fltp"
                samples.frombytes(bytes(frame.planes[0])[: frame.samples * 4])
    rms = math.sqrt(sum(v * v for v in samples) / len(samples))
    assert rms == pytest.approx(8000 / 32768 / math.sqrt(2), rel=0.2)  # the 440 Hz tone


def test_inset_follows_the_stage_timeline(rendition: tuple[RenditionResult, list[float]]) -> None:
    result, _ = rendition
    x, y, w, h = inset_box(result.width, result.height)
    centre = (x + w // 2, y + h // 2)
    pictures = pictures_at(result.video, [1.0, 4.5, 6.5, 9.5])
    assert close_to(pictures[1.0].getpixel((5, 5)), BACKGROUND)  # title card
    before = pictures[4.5].getpixel(centre)
    assert close_to(before, LEAD_BLUE)  # the lead's picture, nobody on stage
    assert close_to(pictures[6.5].getpixel(centre), GREEN)
    assert close_to(pictures[9.5].getpixel(centre), MAGENTA)
    assert close_to(pictures[6.5].getpixel((x - 10, y - 10)), LEAD_BLUE)  # outside inset


def test_poster_and_thumbnails_are_jpegs_and_progress_reaches_one(
    rendition: tuple[RenditionResult, list[float]],
) -> None:
    result, progress = rendition
    with Image.open(result.poster) as poster:
        assert poster.format == "JPEG" and poster.size == (320, 240)
    assert len(result.thumbnails) == 3
    for thumb in result.thumbnails:
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and image.size == (320, 240)
    assert progress == sorted(progress)
    assert progress[-1] == 1.0


def rms_between(path: Path, lo: float, hi: float) -> float:
    samples = array("f")
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            if lo <= frame.time < hi:
                samples.frombytes(bytes(frame.planes[0])[: frame.samples * 4])
    return math.sqrt(sum(v * v for v in samples) / len(samples))


def test_on_stage_classroom_sound_is_mixed_in_only_while_on_stage(tmp_path: Path) -> None:
    lead = record_track(tmp_path, "lead-mic", OPUS, encode_opus(3.0, 440.0), 0.0, "lead")
    room = record_track(tmp_path, "room-mic", OPUS, encode_opus(2.0, 660.0), 0.5, "room-a")
    spec = RenditionSpec(
        output_dir=tmp_path / "out",
        duration_s=3.0,
        title=TitleCard("sound", seconds=0.0),
        lead_audio=track_source(lead, LESSON_START),
        classroom_audio=(("room-a", track_source(room, LESSON_START)),),
        stage=((0.0, None), (1.0, "room-a"), (2.0, None)),
        size=(160, 120),
        thumbnails=1,
    )
    result = render(spec)
    alone, together, after = (
        rms_between(result.video, 0.2, 0.9),
        rms_between(result.video, 1.2, 1.9),
        rms_between(result.video, 2.2, 2.9),
    )
    # Two unrelated tones of equal level: power doubles while both are heard.
    assert together == pytest.approx(alone * math.sqrt(2), rel=0.15)
    assert after == pytest.approx(alone, rel=0.15)


def test_an_h264_track_gets_an_mp4_copy_with_the_same_packets(
    tmp_path: Path, h264_clip: list[EncodedFrame]
) -> None:
    sidecar = record_track(tmp_path, "lead-camera", H264, h264_clip, 0.0, "lead")
    track = sidecar.with_name("lead-camera.mkv")
    copy = tmp_path / "out" / "lead-camera.mp4"
    spec = RenditionSpec(
        output_dir=tmp_path / "out",
        duration_s=4.0,
        title=TitleCard("copy", seconds=0.0),
        lead_video=track_source(sidecar, LESSON_START),
        size=(160, 120),
        thumbnails=1,
        copies=((track, copy),),
    )
    result = render(spec)
    assert result.copies == ((track, copy),)

    def packets(path: Path) -> list[tuple[bytes, float, bool]]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return [
                (bytes(p), round(float(p.pts * p.time_base), 3), p.is_keyframe)
                for p in container.demux(stream)
                if p.size
            ]

    # Remuxed, not re-encoded: the same access units at the same times, in an MP4.
    assert packets(copy) == packets(track)
    with av.open(str(copy)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert sum(1 for _ in container.decode(video=0)) == 100
    assert not list((tmp_path / "out").glob("*.part"))


def test_a_track_that_cannot_be_copied_leaves_the_rendition_good(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"not matroska")
    spec = RenditionSpec(
        output_dir=tmp_path / "out",
        duration_s=1.0,
        title=TitleCard("x", seconds=0.0),
        size=(64, 48),
        thumbnails=1,
        copies=((broken, tmp_path / "out" / "broken.mp4"),),
    )
    result = render(spec)
    assert result.copies == () and result.video.exists()
    assert not (tmp_path / "out" / "broken.mp4").exists()

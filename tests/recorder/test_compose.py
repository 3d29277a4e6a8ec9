from __future__ import annotations

import av
import pytest
from recorder_media import H264, EncodedFrame, RtpPublisher

from recorder.compose import BACKGROUND, TEXT, inset_box, mix, title_card
from recorder.depacketize import create_depacketizer
from recorder.h264_sps import access_unit_dimensions, sps_dimensions
from recorder.rendition import on_stage


def test_title_card_draws_every_line_even_a_long_one_inside_the_picture() -> None:
    lines = ["《圆的面积》" * 12, "小学六年级 数学", "", "城关小学", "李老师"]
    image = title_card((320, 240), lines)
    assert image.size == (320, 240)
    assert image.getpixel((0, 0)) == BACKGROUND
    text_rows = {
        y
        for y in range(240)
        for x in range(0, 320, 2)
        if sum(abs(a - b) for a, b in zip(image.getpixel((x, y)), TEXT, strict=True)) < 60
    }
    assert len(text_rows) > 20
    assert all(image.getpixel((x, 120)) == BACKGROUND for x in (0, 1, 318, 319))


def test_inset_sits_bottom_right_with_even_sides() -> None:
    assert inset_box(1280, 720) == (864, 472, 384, 216)
    x, y, w, h = inset_box(320, 240)
    assert (w % 2, h % 2) == (0, 0) and x + w < 320 and y + h < 240


def test_stage_timeline_lookup_takes_the_last_change_at_or_before_t() -> None:
    stage = ((0.0, None), (5.0, "a"), (8.0, None))
    assert [on_stage(stage, t) for t in (0.0, 4.99, 5.0, 7.9, 8.0, 99.0)] == [
        None,
        None,
        "a",
        "a",
        None,
        None,
    ]
    assert on_stage((), 3.0) is None


def test_mixing_clips_instead_of_wrapping() -> None:
    loud = (30000).to_bytes(2, "little", signed=True) * 2
    assert mix(loud, loud) == (32767).to_bytes(2, "little", signed=True) * 2


@pytest.mark.parametrize(("size", "profile"), [((320, 240), "high"), ((320, 180), "baseline")])
def test_h264_picture_size_is_read_from_the_sps(size: tuple[int, int], profile: str) -> None:
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height = size
    enc.pix_fmt = "yuv420p"
    enc.options = {"preset": "ultrafast", "profile": profile}
    frame = av.VideoFrame(size[0], size[1], "yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])
    assert access_unit_dimensions(data) == size


def test_h264_size_comes_from_depacketized_keyframes_and_bad_sps_fail_clearly(
    h264_clip: list[EncodedFrame],
) -> None:
    with pytest.raises(ValueError, match=r"^H\.264 NAL unit is not a sequence parameter set\.$"):
        sps_dimensions(b"\x68\x00")
    with pytest.raises(ValueError, match=r"^H\.264 SPS is truncated\.$"):
        sps_dimensions(b"\x67\x42")
    publisher = RtpPublisher(H264)
    depacketizer = create_depacketizer("video/H264")
    out = []
    for i, (_, packet) in enumerate(publisher.stream(h264_clip[:2])):
        out += depacketizer.push(packet, float(i))
    out += depacketizer.flush()
    assert access_unit_dimensions(out[0].data) == (320, 240)
    with pytest.raises(ValueError, match="carries no sequence parameter set"):
        access_unit_dimensions(out[1].data)

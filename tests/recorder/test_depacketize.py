from __future__ import annotations

import random

import pytest
from recorder_media import H264, OPUS, VP8, EncodedFrame, RtpPublisher, rtp, split_annex_b

from recorder.depacketize import (
    Depacketizer,
    create_depacketizer,
    h264_nal_units,
    parse_rtp,
    vp8_descriptor,
    vp8_dimensions,
)


def feed(depacketizer: Depacketizer, packets: list[bytes]) -> list:
    frames = []
    for i, packet in enumerate(packets):
        frames += depacketizer.push(packet, float(i))
    return frames + depacketizer.flush()


def packets_of(publisher: RtpPublisher, frames: list[EncodedFrame]) -> list[bytes]:
    return [packet for _, packet in publisher.stream(frames)]


def test_vp8_frames_come_out_byte_for_byte(vp8_clip: list[EncodedFrame]) -> None:
    frames = feed(create_depacketizer("video/VP8"), packets_of(RtpPublisher(VP8), vp8_clip[:50]))
    assert [f.data for f in frames] == [f.data for f in vp8_clip[:50]]
    assert [f.keyframe for f in frames] == [f.keyframe for f in vp8_clip[:50]]
    assert frames[1].timestamp - frames[0].timestamp == 3600


def test_vp8_keyframe_header_gives_the_picture_size(vp8_clip: list[EncodedFrame]) -> None:
    assert vp8_dimensions(vp8_clip[0].data) == (320, 240)


def test_h264_access_units_come_out_as_annex_b(h264_clip: list[EncodedFrame]) -> None:
    depacketizer = create_depacketizer("video/H264")
    frames = feed(depacketizer, packets_of(RtpPublisher(H264), h264_clip[:30]))
    assert len(frames) == 30
    assert frames[0].keyframe and not frames[1].keyframe
    for got, sent in zip(frames, h264_clip[:30], strict=True):
        assert split_annex_b(got.data) == split_annex_b(sent.data)
    assert depacketizer.stats.malformed == 0


def test_opus_packets_are_frames_across_the_sequence_wrap(opus_clip: list[EncodedFrame]) -> None:
    frames = feed(create_depacketizer("audio/opus"), packets_of(RtpPublisher(OPUS), opus_clip))
    assert [f.data for f in frames] == [f.data for f in opus_clip]


def test_reordered_packets_within_the_window_lose_nothing(vp8_clip: list[EncodedFrame]) -> None:
    packets = packets_of(RtpPublisher(VP8), vp8_clip[:50])
    rng = random.Random(7)
    shuffled = []
    for i in range(0, len(packets), 8):  # shuffle within blocks of 8 packets
        block = packets[i : i + 8]
        rng.shuffle(block)
        shuffled += block
    depacketizer = create_depacketizer("video/VP8")
    frames = feed(depacketizer, shuffled + shuffled[:5])  # and a few duplicates
    assert [f.data for f in frames] == [f.data for f in vp8_clip[:50]]
    assert depacketizer.stats.late == 5
    assert depacketizer.stats.lost == 0


def test_a_lost_packet_drops_video_until_the_next_keyframe(vp8_clip: list[EncodedFrame]) -> None:
    publisher = RtpPublisher(VP8)
    per_frame = [publisher.packets(f) for f in vp8_clip[:50]]
    whole_frame_lost = len(per_frame[5]) == 1
    del per_frame[5][0]
    depacketizer = create_depacketizer("video/VP8", window=8)
    frames = feed(depacketizer, [p for packets in per_frame for p in packets])
    expected = vp8_clip[:5] + vp8_clip[25:50]  # keyframes every 25 frames
    assert [f.data for f in frames] == [f.data for f in expected]
    assert depacketizer.stats.lost == 1
    assert depacketizer.stats.dropped_frames == (19 if whole_frame_lost else 20)


def test_a_lost_fu_a_fragment_drops_the_access_unit(h264_clip: list[EncodedFrame]) -> None:
    publisher = RtpPublisher(H264)
    per_frame = [publisher.packets(f) for f in h264_clip[:50]]
    assert len(per_frame[25]) > 2
    del per_frame[25][2]  # inside the keyframe at 1 s
    depacketizer = create_depacketizer("video/H264", window=8)
    frames = feed(depacketizer, [p for packets in per_frame for p in packets])
    assert len(frames) == 25  # 0..24; the damaged keyframe's GOP is skipped
    assert depacketizer.stats.malformed == 0


def test_a_lost_audio_packet_loses_only_that_frame(opus_clip: list[EncodedFrame]) -> None:
    packets = packets_of(RtpPublisher(OPUS), opus_clip[:100])
    del packets[40]
    depacketizer = create_depacketizer("audio/opus", window=4)
    frames = feed(depacketizer, packets)
    assert len(frames) == 99
    assert depacketizer.stats.lost == 1


def test_malformed_packets_are_counted_and_skipped(vp8_clip: list[EncodedFrame]) -> None:
    packets = packets_of(RtpPublisher(VP8), vp8_clip[:30])
    depacketizer = create_depacketizer("video/VP8")
    frames = feed(depacketizer, [b"\x80\x60", b"\x40" * 20, *packets])
    assert len(frames) == 30
    assert depacketizer.stats.malformed == 2


def test_rtp_header_parsing_finds_the_payload_after_extension_and_padding() -> None:
    packet = rtp(96, 7, 1000, 1, True, b"hello", ext=True)
    padded = bytes([packet[0] | 0x20]) + packet[1:] + b"\x00\x00\x03"
    header = parse_rtp(padded)
    assert (header.marker, header.payload_type, header.sequence_number) == (True, 96, 7)
    assert (header.timestamp, header.payload) == (1000, b"hello")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80" * 11, "RTP packet length is less than 12 bytes."),
        (b"\x40" + b"\x00" * 11, "RTP packet has version 1, expected 2."),
        (b"\x90" + b"\x00" * 11 + b"\xbe", "RTP header extension exceeds packet length."),
    ],
)
def test_bad_rtp_headers_raise_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rtp(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "VP8 payload is empty."),
        (b"\x90", "VP8 payload descriptor is truncated."),
        (b"\x10", "VP8 payload has a descriptor but no data."),
    ],
)
def test_bad_vp8_descriptors_raise_clear_errors(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        vp8_descriptor(payload)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "H.264 payload is empty."),
        (b"\x18\x00\x09\x67", "H.264 STAP-A NAL size 9 exceeds the payload."),
        (b"\x7c\x05\x00", "H.264 FU-A fragment arrived without its start."),
        (b"\x7c", "H.264 FU-A payload is shorter than 3 bytes."),
        (b"\x19\x00", "H.264 NAL unit type 25 is not supported."),
    ],
)
def test_bad_h264_payloads_raise_clear_errors(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        h264_nal_units(payload, in_fu=False)
    assert str(info.value) == message


def test_unsupported_codecs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"Recording codec video/VP9 is not supported\."):
        create_depacketizer("video/VP9")

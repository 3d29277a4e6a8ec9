import pytest
from core_support import VP8_KEY, read

from media.rtp import (
    RtpPacket,
    abs_send_time,
    is_h264_idr,
    is_h264_keyframe,
    is_keyframe,
    is_vp8_keyframe,
    keyframe_detector,
    pack_extensions,
    parse_audio_level,
    unwrap_rtx,
    vp8_payload_offset,
    wrap_rtx,
)

FIXTURES = [
    "rtp_vp8_keyframe.bin",
    "rtp_vp8_keyframe_middle.bin",
    "rtp_vp8_delta.bin",
    "rtp_vp8_rtx.bin",
    "rtp_h264_stap_a.bin",
    "rtp_h264_fu_a_idr_start.bin",
    "rtp_h264_fu_a_idr_middle.bin",
    "rtp_h264_delta.bin",
    "rtp_opus_audio_level.bin",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_captured_packets_round_trip_byte_for_byte(name):
    data = read(name)
    assert bytes(RtpPacket.parse(data)) == data


def test_vp8_keyframe_fixture_fields_are_parsed():
    packet = RtpPacket.parse(read("rtp_vp8_keyframe.bin"))
    assert packet.version == 2
    assert packet.payload_type == 96
    assert packet.sequence_number == 65535
    assert packet.timestamp == 3000
    assert packet.ssrc == 0x11223344
    assert packet.marker is False
    assert packet.csrc == ()
    assert packet.extension_profile == 0xBEDE
    assert packet.extensions == [(1, b"0"), (2, b"\x12\x34\x56")]
    assert packet.get_extension(1) == b"0"
    assert packet.get_extension(9) is None


def test_opus_fixture_carries_audio_level_with_voice_flag():
    packet = RtpPacket.parse(read("rtp_opus_audio_level.bin"))
    assert packet.marker is True
    assert parse_audio_level(packet.get_extension(3)) == (30, True)


def test_vp8_keyframe_is_told_only_from_the_first_packet_of_the_frame():
    assert is_vp8_keyframe(RtpPacket.parse(read("rtp_vp8_keyframe.bin")).payload)
    assert not is_vp8_keyframe(RtpPacket.parse(read("rtp_vp8_keyframe_middle.bin")).payload)
    assert not is_vp8_keyframe(RtpPacket.parse(read("rtp_vp8_delta.bin")).payload)


def test_h264_keyframe_starts_at_the_stap_a_carrying_the_sps():
    assert is_h264_keyframe(RtpPacket.parse(read("rtp_h264_stap_a.bin")).payload)
    assert not is_h264_keyframe(RtpPacket.parse(read("rtp_h264_fu_a_idr_start.bin")).payload)
    assert not is_h264_keyframe(RtpPacket.parse(read("rtp_h264_fu_a_idr_middle.bin")).payload)
    assert not is_h264_keyframe(RtpPacket.parse(read("rtp_h264_delta.bin")).payload)


def test_h264_idr_start_is_told_apart_from_its_continuation():
    assert is_h264_idr(RtpPacket.parse(read("rtp_h264_fu_a_idr_start.bin")).payload)
    assert not is_h264_idr(RtpPacket.parse(read("rtp_h264_fu_a_idr_middle.bin")).payload)
    assert not is_h264_idr(RtpPacket.parse(read("rtp_h264_delta.bin")).payload)


def test_h264_single_nal_sps_is_a_keyframe_and_a_lone_idr_or_slice_is_not():
    assert is_h264_keyframe(bytes([0x67, 0x42]))  # SPS
    assert not is_h264_keyframe(bytes([0x65, 0x88]))  # IDR slice without parameter sets
    assert is_h264_idr(bytes([0x65, 0x88]))
    assert not is_h264_keyframe(bytes([0x41, 0x9A]))  # non-IDR slice
    assert not is_h264_keyframe(b"")


def test_h264_stap_a_without_sps_is_not_a_keyframe():
    stap = bytes([0x78, 0x00, 0x02, 0x68, 0xCE, 0x00, 0x02, 0x41, 0x9A])  # PPS + slice
    assert not is_h264_keyframe(stap)


def test_h264_truncated_stap_a_is_not_a_keyframe_and_does_not_raise():
    assert not is_h264_keyframe(bytes([0x78, 0x00]))
    assert not is_h264_keyframe(bytes([0x7C]))  # FU-A without FU header


def test_vp8_descriptor_lengths_follow_the_extension_bits():
    assert vp8_payload_offset(bytes([0x10, 0x00])) == 1
    assert vp8_payload_offset(bytes([0x90, 0x80, 0x05, 0x00])) == 3  # 7-bit picture id
    assert vp8_payload_offset(bytes([0x90, 0x80, 0x85, 0x01, 0x00])) == 4  # 15-bit
    assert vp8_payload_offset(bytes([0x90, 0xE0, 0x85, 0x01, 0x07, 0x40, 0x00])) == 6


def test_vp8_truncated_descriptor_raises_and_is_never_a_keyframe():
    with pytest.raises(ValueError, match=r"^VP8 payload descriptor is truncated\.$"):
        vp8_payload_offset(bytes([0x90, 0x80]))
    with pytest.raises(ValueError, match=r"^VP8 payload descriptor is empty\.$"):
        vp8_payload_offset(b"")
    assert not is_vp8_keyframe(bytes([0x90, 0x80]))
    assert not is_vp8_keyframe(bytes([0x90, 0x80, 0x05]))  # no payload header byte


def test_vp8_start_of_a_later_partition_is_not_a_keyframe():
    assert not is_vp8_keyframe(bytes([0x11, 0x00]))  # S=1, PID=1


def test_opus_packets_are_always_key_and_unknown_codecs_never():
    assert is_keyframe("audio/opus", b"\x01")
    assert is_keyframe("video/VP8", VP8_KEY)
    assert not is_keyframe("video/AV1", b"\x00")
    assert keyframe_detector("audio/opus")(b"")
    assert not keyframe_detector("video/VP9")(b"\x00")
    assert keyframe_detector("video/h264") is is_h264_keyframe


def test_rtx_fixture_unwraps_to_the_original_packet():
    original = RtpPacket.parse(read("rtp_vp8_delta.bin"))
    rtx = RtpPacket.parse(read("rtp_vp8_rtx.bin"))
    assert (rtx.payload_type, rtx.sequence_number, rtx.ssrc) == (97, 1234, 0xAABBCCDD)
    assert unwrap_rtx(rtx, 96, 0x11223344) == original


def test_rtx_wrap_matches_the_captured_rtx_packet():
    original = RtpPacket.parse(read("rtp_vp8_delta.bin"))
    assert bytes(wrap_rtx(original, 97, 0xAABBCCDD, 1234)) == read("rtp_vp8_rtx.bin")


def test_rtx_without_original_sequence_number_is_rejected():
    with pytest.raises(ValueError, match=r"^RTX packet payload is shorter than 2 bytes\.$"):
        unwrap_rtx(RtpPacket(payload=b"\x01"), 96, 1)


def test_short_packet_is_rejected_with_exact_text():
    with pytest.raises(ValueError, match=r"^RTP packet length is less than 12 bytes\.$"):
        RtpPacket.parse(b"\x80" * 11)


def test_wrong_version_is_rejected_with_exact_text():
    with pytest.raises(ValueError, match=r"^RTP packet has version 1, expected 2\.$"):
        RtpPacket.parse(b"\x40" + b"\x00" * 11)


def test_truncated_csrc_list_is_rejected():
    with pytest.raises(ValueError, match=r"^RTP packet CSRC list exceeds packet length\.$"):
        RtpPacket.parse(b"\x82" + b"\x00" * 15)


def test_truncated_extension_header_is_rejected():
    with pytest.raises(ValueError, match=r"^RTP header extension exceeds packet length\.$"):
        RtpPacket.parse(b"\x90" + b"\x00" * 13)


def test_extension_longer_than_packet_is_rejected():
    data = b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x05" + b"\x00" * 4
    with pytest.raises(ValueError, match=r"^RTP header extension exceeds packet length\.$"):
        RtpPacket.parse(data)


def test_one_byte_element_overrunning_the_extension_is_rejected():
    data = b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x01" + b"\x13\x00\x00\x00"
    with pytest.raises(
        ValueError, match=r"^RTP one-byte header extension element exceeds extension length\.$"
    ):
        RtpPacket.parse(data)


def test_two_byte_element_overrunning_the_extension_is_rejected():
    data = b"\x90" + b"\x00" * 11 + b"\x10\x00\x00\x01" + b"\x05\x09\x00\x00"
    with pytest.raises(
        ValueError, match=r"^RTP two-byte header extension element exceeds extension length\.$"
    ):
        RtpPacket.parse(data)


def test_zero_padding_length_is_rejected():
    with pytest.raises(ValueError, match=r"^RTP packet padding length 0 is invalid\.$"):
        RtpPacket.parse(b"\xa0" + b"\x00" * 12)


def test_padding_longer_than_packet_is_rejected():
    with pytest.raises(ValueError, match=r"^RTP packet padding length 9 is invalid\.$"):
        RtpPacket.parse(b"\xa0" + b"\x00" * 11 + b"\x00\x09")


def test_padding_csrc_and_marker_round_trip():
    packet = RtpPacket(
        payload_type=96,
        sequence_number=1,
        timestamp=2,
        ssrc=3,
        marker=True,
        payload=b"abc",
        csrc=(7, 8),
        padding_size=4,
    )
    data = bytes(packet)
    assert data[0] == 0xA2 and data[-1] == 4
    assert RtpPacket.parse(data) == packet


def test_one_byte_extensions_skip_padding_bytes_and_stop_at_id_15():
    data = b"\x90" + b"\x00" * 11 + b"\xbe\xde\x00\x02" + b"\x00\x10\xaa\xf0\x20\xbb\x00\x00"
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(1, b"\xaa")]


def test_two_byte_extensions_round_trip_with_ids_above_14_and_long_values():
    packet = RtpPacket(ssrc=1, extensions=[(20, b"x" * 20), (3, b"")], payload=b"p")
    data = bytes(packet)
    parsed = RtpPacket.parse(data)
    assert parsed.extension_profile == 0x1000
    assert parsed.extensions == [(20, b"x" * 20), (3, b"")]
    assert bytes(parsed) == data


def test_unknown_extension_profile_is_kept_verbatim():
    data = b"\x90" + b"\x00" * 11 + b"\x12\x34\x00\x01" + b"\x01\x02\x03\x04" + b"pl"
    packet = RtpPacket.parse(data)
    assert packet.extensions == [(0, b"\x01\x02\x03\x04")]
    assert bytes(packet) == data


def test_set_and_remove_extension_by_id():
    packet = RtpPacket(ssrc=1, extensions=[(1, b"a"), (2, b"b")])
    packet.set_extension(1, b"z")
    packet.set_extension(5, b"new")
    assert packet.get_extension(1) == b"z"
    assert packet.get_extension(5) == b"new"
    packet.remove_extension(2)
    assert packet.get_extension(2) is None
    assert RtpPacket.parse(bytes(packet)).extensions == packet.extensions


def test_extension_id_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"^RTP header extension id 0 is out of range 1-255\.$"):
        RtpPacket().set_extension(0, b"x")


def test_extension_value_over_255_bytes_cannot_be_written():
    with pytest.raises(
        ValueError, match=r"^RTP header extension 1 value is longer than 255 bytes\.$"
    ):
        pack_extensions([(1, b"x" * 256)])


def test_abs_send_time_is_6_18_fixed_point_seconds():
    assert abs_send_time(1000) == (1 << 18).to_bytes(3, "big")
    assert abs_send_time(64_000) == b"\x00\x00\x00"  # wraps every 64 s
    assert abs_send_time(500) == (1 << 17).to_bytes(3, "big")


def test_empty_audio_level_is_rejected():
    with pytest.raises(ValueError, match=r"^ssrc-audio-level extension is empty\.$"):
        parse_audio_level(b"")

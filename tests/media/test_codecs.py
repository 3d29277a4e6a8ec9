from core_support import OPUS, VP8, params, read, video

from media.codecs import (
    ABS_SEND_TIME,
    AUDIO_LEVEL,
    SDES_MID,
    CodecInfo,
    RtpParameters,
    extension_rewriter,
    vp8_ids,
    vp8_with_ids,
)
from media.rtp import RtpPacket, abs_send_time


def test_codec_info_tells_kind_and_name():
    assert (VP8.kind, VP8.name) == ("video", "VP8")
    assert (OPUS.kind, OPUS.name) == ("audio", "OPUS")
    assert CodecInfo("video/H264", 90000, 102).name == "H264"


def test_feedback_is_looked_up_as_written_in_sdp():
    assert VP8.has_feedback("nack pli")
    assert not OPUS.has_feedback("nack")


def test_rtx_is_enabled_only_with_both_ssrc_and_payload_type():
    assert params(VP8, 1, 2).rtx_enabled
    assert not params(VP8, 1, None).rtx_enabled
    assert not params(OPUS, 1, 2).rtx_enabled


def test_extension_id_is_zero_when_not_negotiated():
    p = RtpParameters(VP8, 1, header_extensions={SDES_MID: 4})
    assert p.extension_id(SDES_MID) == 4
    assert p.extension_id(AUDIO_LEVEL) == 0


def test_rewriter_writes_mid_stamps_send_time_and_remaps_audio_level():
    producer = params(OPUS, extensions={SDES_MID: 1, ABS_SEND_TIME: 2, AUDIO_LEVEL: 3})
    consumer = params(OPUS, extensions={SDES_MID: 9, ABS_SEND_TIME: 8, AUDIO_LEVEL: 7}, mid="5")
    packet = video(1, 0)
    packet.extensions = [(1, b"pub"), (2, b"\x00\x00\x01"), (3, b"\x9e")]
    packet.arrival_ms = 1000
    profile, body = extension_rewriter(producer, consumer).rewrite(packet)
    assert profile == 0xBEDE
    assert (
        body == b"\x90" + b"5" + b"\x82" + abs_send_time(1000) + b"\x70\x9e"
    )  # 8 bytes: no padding


def test_rewriter_drops_extensions_the_subscriber_did_not_negotiate():
    producer = params(OPUS, extensions={SDES_MID: 1, AUDIO_LEVEL: 3})
    consumer = params(OPUS, extensions={})
    packet = video(1, 0)
    packet.extensions = [(1, b"pub"), (3, b"\x9e")]
    assert extension_rewriter(producer, consumer).rewrite(packet) == (0, b"")


def test_alike_consumers_share_one_rewriter_and_one_cached_copy():
    producer = params(VP8)
    a = extension_rewriter(producer, params(VP8, ssrc=5, extensions={SDES_MID: 1}, mid="0"))
    b = extension_rewriter(producer, params(VP8, ssrc=6, extensions={SDES_MID: 1}, mid="0"))
    c = extension_rewriter(producer, params(VP8, ssrc=7, extensions={SDES_MID: 1}, mid="1"))
    assert a is b and a is not c
    packet = video(1, 0)
    b0, tail = a.tail(packet)
    assert packet.wire_cache == (a, b0, tail)
    assert b.tail(packet)[1] is tail


def test_tail_is_the_packet_after_its_fixed_header():
    producer = params(VP8)
    rewriter = extension_rewriter(producer, params(VP8, extensions={SDES_MID: 1}, mid="0"))
    packet = video(1, 0, marker=True)
    b0, tail = rewriter.tail(packet)
    expected = RtpPacket(
        payload_type=96,
        sequence_number=1,
        ssrc=1000,
        marker=True,
        payload=packet.payload,
        extensions=[(1, b"0")],
    )
    assert bytes([b0]) + bytes(expected)[1:12] + tail == bytes(expected)


def test_a_retransmission_is_stamped_with_the_time_it_is_sent():
    producer = params(VP8)
    rewriter = extension_rewriter(producer, params(VP8, extensions={ABS_SEND_TIME: 3}))
    packet = video(1, 0)
    packet.arrival_ms = 1000
    assert rewriter.rewrite(packet)[1][1:4] == abs_send_time(1000)
    assert rewriter.rewrite(packet, now_ms=1500)[1][1:4] == abs_send_time(1500)


def test_vp8_ids_read_15_and_7_bit_picture_ids_and_tl0picidx():
    assert vp8_ids(bytes([0x90, 0x80, 0x81, 0x23, 0x10])) == (0x123, 0x7FFF, -1)
    assert vp8_ids(bytes([0x90, 0xC0, 0x05, 0x09, 0x10])) == (5, 0x7F, 9)
    assert vp8_ids(bytes([0x10, 0x00, 0x00])) == (-1, 0, -1)  # no extension byte
    assert vp8_ids(bytes([0x90, 0x80, 0x81])) == (-1, 0, -1)  # truncated


def test_vp8_ids_are_rewritten_in_place_keeping_the_field_widths():
    payload = bytes([0x90, 0xC0, 0x81, 0x23, 0x09, 0x10, 0xAA])
    out = vp8_with_ids(payload, 0x7FFE, 0x0A)
    assert len(out) == len(payload)
    assert vp8_ids(out) == (0x7FFE, 0x7FFF, 0x0A)
    assert out[5:] == payload[5:]
    assert vp8_with_ids(payload, -1, -1) == payload


def test_vp8_ids_of_a_packet_from_aiortcs_encoder():
    packet = RtpPacket.parse(read("rtp_vp8_keyframe.bin"))
    pid, mask, _ = vp8_ids(packet.payload)
    assert mask == 0x7FFF and pid >= 0
    assert vp8_ids(vp8_with_ids(packet.payload, pid + 1, -1))[0] == pid + 1

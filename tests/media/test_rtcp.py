import pytest
from core_support import read

from media.rtcp import (
    RtcpByePacket,
    RtcpFirPacket,
    RtcpNackPacket,
    RtcpPliPacket,
    RtcpRembPacket,
    RtcpReportBlock,
    RtcpRrPacket,
    RtcpSdesChunk,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtcpUnknownPacket,
    ms_from_ntp,
    ntp_from_ms,
    ntp_middle32,
    parse_compound,
    parse_packet,
    serialize_compound,
)

FIXTURES = [
    "rtcp_sr.bin",
    "rtcp_rr.bin",
    "rtcp_sdes.bin",
    "rtcp_compound_sr_sdes.bin",
    "rtcp_bye.bin",
    "rtcp_nack.bin",
    "rtcp_pli.bin",
    "rtcp_fir.bin",
    "rtcp_remb.bin",
]
BLOCK = RtcpReportBlock(
    ssrc=0x11223344,
    fraction_lost=12,
    packets_lost=-3,
    highest_sequence=0x1FFFF,
    jitter=1234,
    lsr=0xAABBCCDD,
    dlsr=0x10000,
)


@pytest.mark.parametrize("name", FIXTURES)
def test_captured_rtcp_round_trips_byte_for_byte(name):
    data = read(name)
    assert serialize_compound(parse_compound(data)) == data


def test_sender_report_fields_are_parsed():
    (sr,) = parse_compound(read("rtcp_sr.bin"))
    assert sr == RtcpSrPacket(
        ssrc=0x99,
        ntp_timestamp=0xE5A1B2C3D4E5F607,
        rtp_timestamp=3000,
        packet_count=10,
        octet_count=9000,
        reports=[BLOCK],
    )


def test_receiver_report_keeps_negative_cumulative_loss():
    (rr,) = parse_compound(read("rtcp_rr.bin"))
    assert rr == RtcpRrPacket(ssrc=0x98, reports=[BLOCK])
    assert rr.reports[0].packets_lost == -3


def test_compound_packet_is_split_into_sr_and_sdes():
    sr, sdes = parse_compound(read("rtcp_compound_sr_sdes.bin"))
    assert isinstance(sr, RtcpSrPacket)
    assert sdes.chunks == [RtcpSdesChunk(0x99, [(1, b"{e1d2c3b4-tongke}")])]


def test_feedback_fixtures_are_parsed():
    (nack,) = parse_compound(read("rtcp_nack.bin"))
    assert nack == RtcpNackPacket(0x98, 0x11223344, [5, 6, 8, 21, 22, 40])
    (pli,) = parse_compound(read("rtcp_pli.bin"))
    assert pli == RtcpPliPacket(0x98, 0x11223344)
    (fir,) = parse_compound(read("rtcp_fir.bin"))
    assert fir == RtcpFirPacket(0x98, [(0x11223344, 7)])
    (remb,) = parse_compound(read("rtcp_remb.bin"))
    assert remb == RtcpRembPacket(0x98, 1_500_000, [0x11223344])
    (bye,) = parse_compound(read("rtcp_bye.bin"))
    assert bye == RtcpByePacket([0x99, 0x100])


def test_nack_across_sequence_wrap_round_trips():
    nack = RtcpNackPacket(1, 2, [65534, 65535, 0, 5, 40])
    assert parse_packet(bytes(nack)) == nack
    assert len(bytes(nack)) == 12 + 4 * 2  # 65534 + BLP covers up to 14, then 40


def test_nack_of_many_sequence_numbers_packs_sixteen_per_item():
    lost = list(range(100, 134))
    nack = RtcpNackPacket(1, 2, lost)
    assert len(bytes(nack)) == 12 + 4 * 2
    assert parse_packet(bytes(nack)).lost == lost


def test_remb_of_a_large_bitrate_keeps_18_bit_mantissa_precision():
    remb = RtcpRembPacket(1, 123_456_789, [5, 6])
    parsed = parse_packet(bytes(remb))
    assert parsed.ssrcs == [5, 6]
    assert abs(parsed.bitrate - 123_456_789) / 123_456_789 < 1 / (1 << 17)


def test_bye_with_reason_round_trips():
    bye = RtcpByePacket([1], b"teacher left")
    assert parse_packet(bytes(bye)) == bye


def test_sdes_written_by_tongke_has_one_null_and_aligns():
    sdes = RtcpSdesPacket([RtcpSdesChunk(5, [(1, b"abc")]), RtcpSdesChunk(6, [(1, b"abcd")])])
    data = bytes(sdes)
    assert len(data) % 4 == 0
    assert parse_packet(data) == sdes
    assert bytes(parse_packet(data)) == data


def test_unknown_packet_types_are_kept_verbatim():
    xr = bytes([0x80, 207, 0x00, 0x01, 1, 2, 3, 4])
    tcc = bytes([0x8F, 205, 0x00, 0x02]) + bytes(8)
    packets = parse_compound(xr + tcc)
    assert packets == [
        RtcpUnknownPacket(207, 0, b"\x01\x02\x03\x04"),
        RtcpUnknownPacket(205, 15, bytes(8)),
    ]
    assert serialize_compound(packets) == xr + tcc


def test_empty_compound_is_rejected():
    with pytest.raises(ValueError, match=r"^RTCP compound packet is empty\.$"):
        parse_compound(b"")


def test_trailing_bytes_shorter_than_a_header_are_rejected():
    with pytest.raises(ValueError, match=r"^RTCP packet length is less than 4 bytes\.$"):
        parse_compound(read("rtcp_pli.bin") + b"\x81")


def test_length_field_beyond_the_buffer_is_rejected():
    data = bytearray(read("rtcp_pli.bin"))
    data[3] = 9
    with pytest.raises(
        ValueError, match=r"^RTCP packet length field says 40 bytes but 12 remain\.$"
    ):
        parse_compound(bytes(data))


def test_wrong_version_is_rejected():
    data = bytearray(read("rtcp_pli.bin"))
    data[0] = 0x41
    with pytest.raises(ValueError, match=r"^RTCP packet has version 1, expected 2\.$"):
        parse_compound(bytes(data))


def test_sender_report_shorter_than_its_fixed_part_is_rejected():
    with pytest.raises(ValueError, match=r"^RTCP sender report is shorter than 28 bytes\.$"):
        parse_packet(bytes([0x80, 200, 0x00, 0x01, 0, 0, 0, 1]))


def test_report_count_beyond_the_packet_is_rejected():
    data = bytearray(read("rtcp_rr.bin"))
    data[0] = 0x82
    with pytest.raises(
        ValueError, match=r"^RTCP RR has 2 report blocks but too few bytes for them\.$"
    ):
        parse_packet(bytes(data))


def test_receiver_report_without_ssrc_is_rejected():
    with pytest.raises(ValueError, match=r"^RTCP receiver report is shorter than 8 bytes\.$"):
        parse_packet(bytes([0x80, 201, 0x00, 0x00]))


def test_nack_without_media_ssrc_is_rejected():
    with pytest.raises(ValueError, match=r"^RTCP generic NACK length is invalid\.$"):
        parse_packet(bytes([0x81, 205, 0x00, 0x01, 0, 0, 0, 1]))


def test_pli_without_media_ssrc_is_rejected():
    with pytest.raises(ValueError, match=r"^RTCP PLI is shorter than 12 bytes\.$"):
        parse_packet(bytes([0x81, 206, 0x00, 0x01, 0, 0, 0, 1]))


def test_fir_with_a_partial_entry_is_rejected():
    data = bytes([0x84, 206, 0x00, 0x03]) + bytes(12)
    with pytest.raises(ValueError, match=r"^RTCP FIR length is invalid\.$"):
        parse_packet(data)


def test_remb_with_too_many_ssrcs_is_rejected():
    data = bytearray(read("rtcp_remb.bin"))
    data[16] = 3
    with pytest.raises(ValueError, match=r"^RTCP REMB SSRC list exceeds packet length\.$"):
        parse_packet(bytes(data))


def test_application_feedback_that_is_not_remb_is_kept_as_unknown():
    data = bytes([0x8F, 206, 0x00, 0x03]) + bytes(8) + b"ABCD"
    assert parse_packet(data) == RtcpUnknownPacket(206, 15, bytes(8) + b"ABCD")


def test_unterminated_sdes_chunk_is_rejected():
    data = bytes([0x81, 202, 0x00, 0x02, 0, 0, 0, 5, 1, 2, ord("a"), ord("b")])
    with pytest.raises(ValueError, match=r"^RTCP SDES chunk is not terminated\.$"):
        parse_packet(data)


def test_sdes_item_longer_than_the_packet_is_rejected():
    data = bytes([0x81, 202, 0x00, 0x02, 0, 0, 0, 5, 1, 9, ord("a"), 0])
    with pytest.raises(ValueError, match=r"^RTCP SDES item exceeds packet length\.$"):
        parse_packet(data)


def test_bye_reason_longer_than_the_packet_is_rejected():
    data = bytes([0x81, 203, 0x00, 0x02, 0, 0, 0, 5, 9, ord("a"), 0, 0])
    with pytest.raises(ValueError, match=r"^RTCP BYE reason exceeds packet length\.$"):
        parse_packet(data)


def test_padded_packet_ignores_its_padding():
    data = bytes([0xA1, 206, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4])
    assert parse_packet(data) == RtcpPliPacket(1, 2)


def test_invalid_padding_is_rejected():
    data = bytes([0xA1, 206, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"^RTCP packet padding length 0 is invalid\.$"):
        parse_packet(data)


def test_ntp_conversions_round_trip_to_the_millisecond():
    ms = 1_764_384_000_123
    ntp = ntp_from_ms(ms)
    assert abs(ms_from_ntp(ntp) - ms) < 0.001
    assert ntp >> 32 == ms // 1000 + 2208988800
    assert ntp_middle32(ntp) == (ntp >> 16) & 0xFFFFFFFF


def test_a_padded_unknown_packet_round_trips_with_its_padding():
    data = bytes([0xA0, 207, 0x00, 0x02, 1, 2, 3, 4, 0, 0, 0, 4])
    packet = parse_packet(data)
    assert packet == RtcpUnknownPacket(207, 0, bytes([1, 2, 3, 4, 0, 0, 0, 4]), padded=True)
    assert bytes(packet) == data

"""H264Packetizer: RFC 6184 packetization-mode 1 for RTSP ingest (no decoding)."""

from __future__ import annotations

import pytest

from media.h264_packetizer import H264Packetizer, profile_level_id, split_nal_units
from recorder.depacketize import H264Depacketizer

SPS = bytes.fromhex("6742c01eda0280bfe5c05a8303035280000003008000001e478b1750")
PPS = bytes.fromhex("68ce3c80")
AUD = bytes.fromhex("0910")
IDR = bytes([0x65]) + bytes(range(256)) * 20  # 5121 bytes: fragmented
SLICE = bytes([0x41]) + b"\x9a" * 300


def annex_b(*units: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def test_annex_b_and_length_prefixed_access_units_split_into_nal_units() -> None:
    assert split_nal_units(annex_b(AUD, SPS, PPS)) == [AUD, SPS, PPS]
    assert split_nal_units(b"\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS) == [SPS, PPS]
    avcc = b"".join(len(u).to_bytes(4, "big") + u for u in (SPS, PPS))
    assert split_nal_units(avcc) == [SPS, PPS]
    with pytest.raises(ValueError, match="neither Annex B nor 4-byte length-prefixed"):
        split_nal_units(b"\x00\x00\x00\x09abc")


def test_profile_level_id_comes_from_the_sps() -> None:
    assert profile_level_id(SPS) == "42c01e"
    with pytest.raises(ValueError, match=r"Not an H\.264 SPS NAL unit"):
        profile_level_id(PPS)


def test_an_idr_goes_out_as_stap_a_of_sps_pps_then_fu_a_fragments() -> None:
    packetizer = H264Packetizer(102, 1234, mtu=1200)
    packets = packetizer.packetize([AUD, SPS, PPS, IDR], 9000)
    first = packets[0].payload
    assert first[0] & 0x1F == 24  # STAP-A, the AUD dropped
    assert first[1:3] == len(SPS).to_bytes(2, "big") and first[3 : 3 + len(SPS)] == SPS
    fragments = packets[1:]
    assert all(p.payload[0] & 0x1F == 28 for p in fragments)
    assert fragments[0].payload[1] == 0x80 | 5 and fragments[-1].payload[1] == 0x40 | 5
    assert all(len(p.payload) <= 1200 for p in packets)
    assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
    assert {p.timestamp for p in packets} == {9000} and {p.ssrc for p in packets} == {1234}
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(packets))]


def test_sps_and_pps_are_put_before_every_idr_that_comes_without_them() -> None:
    packetizer = H264Packetizer(102, 1)
    packetizer.set_parameter_sets([SPS, PPS])  # out of band (the source's SDP)
    packets = packetizer.packetize([IDR], 0)
    assert packets[0].payload[0] & 0x1F == 24
    assert SPS in packets[0].payload and PPS in packets[0].payload
    plain = packetizer.packetize([SLICE], 3000)  # not an IDR: nothing added
    assert len(plain) == 1 and plain[0].payload == SLICE and plain[0].marker


def test_packetized_access_units_depacketize_to_the_same_nal_units() -> None:
    packetizer = H264Packetizer(102, 7, mtu=500)
    depacketizer = H264Depacketizer()
    frames = []
    for ts, units in ((0, [SPS, PPS, IDR]), (3000, [SLICE]), (6000, [SLICE, SLICE])):
        for packet in packetizer.packetize(units, ts):
            frames += depacketizer.push(bytes(packet), 0.0)
    frames += depacketizer.flush()
    assert [split_nal_units(f.data) for f in frames] == [[SPS, PPS, IDR], [SLICE], [SLICE, SLICE]]
    assert [f.keyframe for f in frames] == [True, False, False]


def test_a_frame_in_slices_gets_one_marker_and_its_parameter_sets_once() -> None:
    packetizer = H264Packetizer(102, 1)
    packetizer.set_parameter_sets([SPS, PPS])
    first = packetizer.packetize([IDR[:300]], 9000, end_of_frame=False)
    last = packetizer.packetize([bytes([0x65]) + b"\x01" * 200], 9000, end_of_frame=True)
    assert SPS in first[0].payload  # the parameter sets lead the frame ...
    assert all(SPS not in p.payload for p in last)  # ... once, not before each slice
    assert [p.marker for p in first + last] == [False] * len(first) + [False] * (len(last) - 1) + [
        True
    ]

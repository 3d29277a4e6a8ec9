"""Writes the wire fixtures in this folder ONCE, with aiortc's own encoders and serializers.

Run: .venv/bin/python tests/media/data/generate.py   (the .bin files are committed; the
tests never run this). Video comes from aiortc's VP8 and H.264 encoders on a synthetic
frame, so descriptors and NAL layouts are what a real aiortc publisher sends.
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    wrap_rtx,
)

HERE = Path(__file__).parent
EXTENSIONS = HeaderExtensionsMap()
EXTENSIONS.configure(
    RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(
                id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            ),
            RTCRtpHeaderExtensionParameters(
                id=3, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
            ),
        ]
    )
)


def frames(count: int) -> list[av.VideoFrame]:
    out = []
    for i in range(count):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for n, plane in enumerate(frame.planes):
            width = plane.line_size
            rows = plane.buffer_size // width
            if n == 0:  # noisy luma so that a keyframe spans several packets
                plane.update(random.Random(i).randbytes(width * rows))
            else:
                plane.update(bytes([128]) * (width * rows))
        frame.pts = i * 3000
        frame.time_base = Fraction(1, 90000)
        out.append(frame)
    return out


def rtp(pt: int, seq: int, ts: int, payload: bytes, marker: int, mid: str) -> bytes:
    packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=0x11223344)
    packet.payload = payload
    packet.marker = marker
    packet.extensions.mid = mid
    packet.extensions.abs_send_time = 0x123456
    return packet.serialize(EXTENSIONS)


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)


def main() -> None:
    vp8 = Vp8Encoder()
    key_payloads, _ = vp8.encode(frames(1)[0], force_keyframe=True)
    write("rtp_vp8_keyframe.bin", rtp(96, 65535, 3000, key_payloads[0], 0, "0"))
    write("rtp_vp8_keyframe_middle.bin", rtp(96, 0, 3000, key_payloads[1], 0, "0"))
    delta_payloads, _ = vp8.encode(frames(2)[1])
    write("rtp_vp8_delta.bin", rtp(96, 7, 6000, delta_payloads[0], 1, "0"))

    h264 = H264Encoder()
    payloads, _ = h264.encode(frames(1)[0], force_keyframe=True)
    write("rtp_h264_stap_a.bin", rtp(102, 100, 3000, payloads[0], 0, "1"))
    fu = [p for p in payloads if p[0] & 0x1F == 28]
    write("rtp_h264_fu_a_idr_start.bin", rtp(102, 101, 3000, fu[0], 0, "1"))
    write("rtp_h264_fu_a_idr_middle.bin", rtp(102, 102, 3000, fu[1], 0, "1"))
    delta, _ = h264.encode(frames(2)[1])
    write("rtp_h264_delta.bin", rtp(102, 200, 6000, delta[0], 1, "1"))

    audio = RtpPacket(payload_type=111, sequence_number=4, timestamp=960, ssrc=0x55667788)
    audio.payload = b"\xfc\xff\xfe"  # an Opus silence frame
    audio.marker = 1
    audio.extensions.mid = "2"
    audio.extensions.audio_level = (True, 30)
    write("rtp_opus_audio_level.bin", audio.serialize(EXTENSIONS))

    original = RtpPacket.parse(HERE.joinpath("rtp_vp8_delta.bin").read_bytes(), EXTENSIONS)
    write("rtp_vp8_rtx.bin", wrap_rtx(original, 97, 1234, 0xAABBCCDD).serialize(EXTENSIONS))

    report = RtcpReceiverInfo(
        ssrc=0x11223344,
        fraction_lost=12,
        packets_lost=-3,
        highest_sequence=0x1FFFF,
        jitter=1234,
        lsr=0xAABBCCDD,
        dlsr=0x10000,
    )
    sr = RtcpSrPacket(
        ssrc=0x99,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=0xE5A1B2C3D4E5F607, rtp_timestamp=3000, packet_count=10, octet_count=9000
        ),
    )
    sr.reports.append(report)
    write("rtcp_sr.bin", bytes(sr))
    rr = RtcpRrPacket(ssrc=0x98, reports=[report])
    write("rtcp_rr.bin", bytes(rr))
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=0x99, items=[(1, b"{e1d2c3b4-tongke}")])])
    write("rtcp_sdes.bin", bytes(sdes))
    write("rtcp_compound_sr_sdes.bin", bytes(sr) + bytes(sdes))
    write("rtcp_bye.bin", bytes(RtcpByePacket(sources=[0x99, 0x100])))
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=0x98, media_ssrc=0x11223344)
    nack.lost = [5, 6, 8, 21, 22, 40]
    write("rtcp_nack.bin", bytes(nack))
    write(
        "rtcp_pli.bin", bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=0x98, media_ssrc=0x11223344))
    )
    remb = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=0x98, media_ssrc=0, fci=pack_remb_fci(1_500_000, [0x11223344])
    )
    write("rtcp_remb.bin", bytes(remb))
    fir = RtcpPsfbPacket(
        fmt=4, ssrc=0x98, media_ssrc=0, fci=(0x11223344).to_bytes(4, "big") + b"\x07\x00\x00\x00"
    )
    write("rtcp_fir.bin", bytes(fir))


if __name__ == "__main__":
    main()

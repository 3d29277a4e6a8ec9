"""Audio on lossy links: Opus in-band FEC is asked for, and the publisher is told the loss.

Opus carries its own repair (in-band FEC, RFC 7587): a packet holds a coarse copy of the one
before. A publisher's encoder adds it only when the answer's fmtp says ``useinbandfec=1``, and
libwebrtc scales it with the loss its receiver reports read; the SFU's reports about a
microphone therefore carry the worst loss a subscriber reports of it (audio only).
"""

from __future__ import annotations

from pathlib import Path

from core_support import OPUS, Clock, RecordingSink, audio, params, video

from media.router import Router
from media.rtcp import RtcpReportBlock, RtcpRrPacket
from media.transport import WebRtcTransport

CHROMIUM_OFFER = (Path(__file__).parent / "data" / "sdp" / "chromium_publish_offer.sdp").read_text()


def fmtp_of(sdp: str, codec: str) -> str:
    """The fmtp parameters of ``codec`` (e.g. "opus/48000/2") in ``sdp``."""
    pt = next(
        line.split()[0].split(":")[1]
        for line in sdp.splitlines()
        if line.startswith("a=rtpmap:") and line.endswith(codec)
    )
    return next(
        (line.split(" ", 1)[1] for line in sdp.splitlines() if line.startswith(f"a=fmtp:{pt} ")),
        "",
    )


async def test_a_chromium_microphone_is_answered_with_opus_in_band_fec() -> None:
    transport = WebRtcTransport("t", "send", host_addresses=["127.0.0.1"])
    try:
        answer, tracks = await transport.accept_offer(CHROMIUM_OFFER)
    finally:
        await transport.close()
    params_ = {t.kind: t.params for t in tracks}
    assert params_["audio"].codec.payload_type == 111  # the publisher's own payload type
    fmtp = dict(p.split("=") for p in fmtp_of(answer, "opus/48000/2").split(";"))
    assert fmtp == {"minptime": "10", "useinbandfec": "1"}
    assert params_["audio"].codec.parameters["useinbandfec"] == 1


def lesson() -> tuple[Clock, Router, RecordingSink]:
    clock = Clock()
    router = Router("lesson", clock=clock)
    upstream = RecordingSink()
    mic = router.create_producer("mic", "audio", "mic", "main", params(OPUS, 2000, None), upstream)
    for seq in range(100):
        mic.receive_rtp(audio(seq, seq * 960), clock.advance(20))
    return clock, router, upstream


def reported(upstream: RecordingSink, ssrc: int) -> int:
    """The fraction_lost (0-255) of the last receiver report the publisher got about ``ssrc``."""
    blocks = [b for p in upstream.rtcp if isinstance(p, RtcpRrPacket) for b in p.reports]
    return [b.fraction_lost for b in blocks if b.ssrc == ssrc][-1]


def test_the_publisher_hears_the_worst_loss_its_audio_subscribers_report() -> None:
    clock, router, upstream = lesson()
    near = router.create_consumer("near", "mic", params(OPUS, 3000, None), RecordingSink())
    far = router.create_consumer("far", "mic", params(OPUS, 3001, None), RecordingSink())
    near.receive_receiver_report(RtcpReportBlock(3000, fraction_lost=3))
    far.receive_receiver_report(RtcpReportBlock(3001, fraction_lost=26))  # ~10 % lost
    for data in router.get_producer("mic").get_rtcp(clock.advance(1)):
        upstream.send_rtcp(data)
    assert reported(upstream, 2000) == 26


def test_a_stale_or_paused_subscribers_loss_no_longer_counts() -> None:
    clock, router, upstream = lesson()
    far = router.create_consumer("far", "mic", params(OPUS, 3001, None), RecordingSink())
    far.receive_receiver_report(RtcpReportBlock(3001, fraction_lost=26))
    clock.advance(6000)  # its reports stopped (the classroom left or its link died)
    for data in router.get_producer("mic").get_rtcp(clock.now):
        upstream.send_rtcp(data)
    assert reported(upstream, 2000) == 0
    far.receive_receiver_report(RtcpReportBlock(3001, fraction_lost=26))
    far.pause()  # a muted classroom's audio to the lead, say: it hears nothing of it
    for data in router.get_producer("mic").get_rtcp(clock.advance(1)):
        upstream.send_rtcp(data)
    assert reported(upstream, 2000) == 0


def test_video_subscribers_loss_is_not_passed_to_the_publisher() -> None:
    # NACK repair at the SFU serves video; reporting one classroom's loss upstream would make
    # the lead's encoder send less to every classroom.
    clock = Clock()
    router = Router("lesson", clock=clock)
    upstream = RecordingSink()
    camera = router.create_producer("cam", "video", "camera", "main", params(), upstream)
    for seq in range(100):
        camera.receive_rtp(video(seq, seq * 3000, key=seq == 0), clock.advance(33))
    viewer = router.create_consumer("v", "cam", params(ssrc=5000, rtx_ssrc=5001), RecordingSink())
    viewer.receive_receiver_report(RtcpReportBlock(5000, fraction_lost=26))
    for data in camera.get_rtcp(clock.advance(1)):
        upstream.send_rtcp(data)
    assert reported(upstream, 1000) == 0

"""The recorder as the SFU's internal subscriber: a real media.Router consumer writes into
a TrackRecorder (the consumer rewrites SSRC, sequence numbers and timestamps)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from recorder_media import VP8, EncodedFrame, RtpPublisher

from recorder.sidecar import TrackInfo
from recorder.track_writer import TrackRecorder

codecs = pytest.importorskip("media.codecs")
router_module = pytest.importorskip("media.router")
rtp_module = pytest.importorskip("media.rtp")


class Upstream:
    """The publisher's side of RTCP (keyframe requests land here)."""

    def __init__(self) -> None:
        self.rtcp: list[bytes] = []

    def send_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)


async def test_a_router_consumer_feeds_the_recorder_a_decodable_file(
    tmp_path: Path, vp8_clip: list[EncodedFrame]
) -> None:
    codec = codecs.CodecInfo("video/VP8", 90000, 96, rtcp_feedback=("nack", "nack pli"))
    router = router_module.Router("lesson-1")
    producer = router.create_producer(
        "cam", "video", "camera", "main", codecs.RtpParameters(codec, ssrc=0x1234), Upstream()
    )
    recorder_codec = codecs.CodecInfo("video/VP8", 90000, 100)
    consumer_params = codecs.RtpParameters(recorder_codec, ssrc=0xABCD)
    recorder = TrackRecorder(tmp_path / "cam.mkv", recorder_codec, TrackInfo("cam", "camera", "r"))
    consumer = router.create_consumer("rec-cam", "cam", consumer_params, recorder, layered=False)
    recorder.set_key_frame_requester(consumer.receive_key_frame_request)
    now = 1000
    for frame, packet in RtpPublisher(VP8).stream(vp8_clip[:75]):
        now = 1000 + frame.timestamp // 90
        producer.receive_rtp(rtp_module.RtpPacket.parse(packet), now)
    summary = await recorder.finish()
    consumer.close()
    router.close()
    assert summary.frames == 75
    with av.open(str(summary.path)) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 75

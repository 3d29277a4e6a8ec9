"""RtspIngest: a real RTSP source (GStreamer's RTSP server, a 录播 host stand-in) pulled into
a lesson's producers, H.264 forwarded without decoding and AAC as Opus, played by a
decoding aiortc receiver through the SFU. The source killed and restarted comes back; an
H.265 source is refused with a clear reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from gst_support import require_gstreamer
from rtsp_support import RtspSourceProcess

from media.rtsp_ingest import RtspIngest, RtspState, RtspStatus
from media.sfu import MediaService
from media.sfu_types import LocalTrack
from media.synthetic.peers import SyntheticReceiver

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(autouse=True)
def _gstreamer() -> None:
    require_gstreamer()


async def wait_until(condition: Callable[[], bool], within: float = 20.0, what: Any = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, (
            f"not met within {within}s: {what() if callable(what) else what}"
        )
        await asyncio.sleep(0.05)


async def play(service: MediaService, lesson: str, peer: str) -> SyntheticReceiver:
    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    ids = [p.id for p in service.producers(lesson)]
    result = await service.subscribe(lesson, peer, ids)
    while result is not None:
        result = await service.answer(peer, await receiver.accept_offer(result.sdp))
    return receiver


def ingest_for(
    service: MediaService, url: str, statuses: list[RtspStatus], **kw: Any
) -> RtspIngest:
    async def setup(tracks: list[LocalTrack]) -> list[Any]:
        return [p for _, p in service.publish_local("L", "rtsp-1", tracks)]

    return RtspIngest(url, setup=setup, on_status=statuses.append, **kw)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_an_h264_aac_source_plays_and_comes_back_after_a_restart(transport: str) -> None:
    source = await RtspSourceProcess("--gop", "30").start()
    service = MediaService(host_addresses=LOOPBACK, quality_interval_s=0)
    statuses: list[RtspStatus] = []
    ingest = ingest_for(service, source.url, statuses, transport=transport)
    ingest.start()
    receiver: SyntheticReceiver | None = None
    try:
        await wait_until(lambda: len(service.producers("L")) == 2, what=lambda: statuses)
        assert {(p.kind, p.mime_type) for p in service.producers("L")} == {
            ("video", "video/H264"),
            ("audio", "audio/opus"),
        }
        assert statuses[-1].state is RtspState.LIVE and statuses[-1].video.startswith("H.264")
        assert "AAC" in statuses[-1].audio
        receiver = await play(service, "L", "r")
        got = receiver
        await wait_until(lambda: got.decoded["video"] >= 60 and got.decoded["audio"] >= 50,
                         what=lambda: (got.decoded, statuses))  # fmt: skip
        assert got.decode_errors == 0 and got.video_sizes[-1] == (640, 360)
        # The 录播 host reboots: killed, started again on the same address.
        await source.kill()
        await wait_until(lambda: ingest.status.state is RtspState.RETRYING, within=15,
                         what=lambda: statuses)  # fmt: skip
        before = got.decoded["video"]
        await source.start()
        restarted = time.monotonic()
        await wait_until(lambda: got.decoded["video"] >= before + 10, within=10,
                         what=lambda: (got.decoded, statuses))  # fmt: skip
        back_s = time.monotonic() - restarted
        assert back_s < 5.0, f"video back after {back_s:.1f} s"
        assert ingest.status.state is RtspState.LIVE and ingest.status.reconnects == 1
        assert got.decode_errors == 0
    finally:
        await ingest.close()
        if receiver is not None:
            await receiver.close()
        await service.close()
        await source.kill()


async def test_an_h265_source_is_refused_with_a_reason_an_admin_can_act_on() -> None:
    source = await RtspSourceProcess("--codec", "h265", "--no-audio").start()
    service = MediaService(host_addresses=LOOPBACK, quality_interval_s=0)
    statuses: list[RtspStatus] = []
    ingest = ingest_for(service, source.url, statuses)
    ingest.start()
    try:
        await wait_until(lambda: ingest.status.state is RtspState.FAILED, what=lambda: statuses)
        assert ingest.status.code == "unsupported_codec"
        assert "H.265" in ingest.status.message and "H.264" in ingest.status.message
        assert service.producers("L") == []  # nothing half-made is offered to anyone
    finally:
        await ingest.close()
        await service.close()
        await source.kill()


async def test_a_source_that_is_not_there_is_retried_and_says_why() -> None:
    service = MediaService(host_addresses=LOOPBACK, quality_interval_s=0)
    statuses: list[RtspStatus] = []
    ingest = ingest_for(service, "rtsp://127.0.0.1:9/none", statuses)
    ingest.start()
    try:
        await wait_until(lambda: bool(statuses), what=lambda: statuses)
        assert statuses[0].state is RtspState.RETRYING and statuses[0].code == "unreachable"
        assert statuses[0].message == "Nothing answers at that address and port."
        assert service.producers("L") == []
    finally:
        await ingest.close()
        await service.close()

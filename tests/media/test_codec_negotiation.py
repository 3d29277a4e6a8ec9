"""H.264 profile negotiation toward subscribers (issue 19).

A producer's H.264 is offered to subscribers with its own fmtp (profile-level-id,
packetization-mode=1, level-asymmetry-allowed=1) first and Constrained Baseline after it; the
answer decides which payload type the consumer sends. A receiver whose answer rejects the
m-line or keeps no H.264 with packetization-mode=1 is told (``subscribe_refused``) while its
other m-lines play. Publishers offering only what browsers cannot decode (H.265, High 10)
are refused naming it.

Real peers: a GStreamer RTSP server sending High profile H.264 (a 录播 host stand-in)
pulled by RtspIngest, decoded by an aiortc receiver and by Chromium; answers edited as
Chromium writes a rejection (port 0, outside BUNDLE).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gst_support import require_gstreamer
from rtsp_support import RtspSourceProcess
from sfu_support import LOOPBACK, publish, wait_for

from media.codecs import CodecInfo
from media.negotiation import (
    FALLBACK_PROFILE_LEVEL_ID,
    NegotiationError,
    capabilities_for,
    describe_h264,
    h264_playable,
)
from media.rtsp_ingest import RtspIngest, RtspState, RtspStatus
from media.sfu import MediaError, MediaService, TrackSpec
from media.sfu_types import LocalTrack
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from media.transport import WebRtcTransport

CHROMIUM = "/usr/bin/chromium"


def h264(plid: str) -> CodecInfo:
    return CodecInfo(
        "video/H264",
        90_000,
        102,
        parameters={"packetization-mode": "1", "profile-level-id": plid},
        rtx_payload_type=103,
    )


def fmtp_lines(sdp: str) -> list[str]:
    """The H.264 fmtp values of an SDP, in m-line order."""
    pts = re.findall(r"a=rtpmap:(\d+) H264/90000", sdp)
    return [re.search(rf"a=fmtp:{pt} ([^\r\n]*)", sdp).group(1) for pt in pts]  # type: ignore[union-attr]


# -- the negotiation functions ------------------------------------------------------------


def test_profiles_are_named_and_only_what_browsers_decode_is_playable() -> None:
    assert describe_h264("640028") == "H.264 High 4.0 (640028)"
    assert describe_h264("4D0029") == "H.264 Main 4.1 (4d0029)"
    assert describe_h264("42e01f") == "H.264 Constrained Baseline 3.1 (42e01f)"
    assert describe_h264("6e0028") == "H.264 High 10 (6e0028)"
    assert [h264_playable(p) for p in ("42001f", "42e01f", "4d0028", "640c1f", "640028")] == [
        True
    ] * 5
    assert [h264_playable(p) for p in ("6e0028", "7a0028", "f40028", "zz")] == [False] * 4


def test_high_is_offered_with_its_own_fmtp_first_and_constrained_baseline_after() -> None:
    offer = capabilities_for(h264("640028"))
    names = [(c.mimeType, c.parameters.get("profile-level-id")) for c in offer.capabilities]
    assert names == [
        ("video/H264", "64001f"),  # aiortc's High entry; its fmtp is replaced by the producer's
        ("video/H264", FALLBACK_PROFILE_LEVEL_ID),
        ("video/rtx", None),
    ]
    assert offer.fmtp == {
        "level-asymmetry-allowed": "1",
        "packetization-mode": "1",
        "profile-level-id": "640028",
    }
    # Constrained Baseline needs no fallback; High 10 cannot be offered at all.
    assert len(capabilities_for(h264("42e01f")).capabilities) == 2
    with pytest.raises(NegotiationError) as refused:
        capabilities_for(h264("6e0028"))
    assert refused.value.code == "unsupported_codec" and "High 10" in refused.value.message


async def test_the_offer_carries_the_producer_profile_and_other_transports_keep_theirs() -> None:
    high = WebRtcTransport("o1", "recv", host_addresses=LOOPBACK)
    plain = WebRtcTransport("o2", "recv", host_addresses=LOOPBACK)
    try:
        track = high.add_outgoing(h264("4d0029"), "s", "t")
        plain.add_outgoing(h264("42e01f"), "s", "t")
        assert fmtp_lines(await high.create_offer()) == [
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d0029",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ]
        assert track.params is not None
        assert track.params.codec.parameters["profile-level-id"] == "4d0029"
        # aiortc's shared codec list is untouched: another transport offers its own.
        assert fmtp_lines(await plain.create_offer()) == [
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
        ]
    finally:
        await high.close()
        await plain.close()


async def test_an_h265_publisher_is_refused_naming_the_codec(clip_cache) -> None:
    service = MediaService(host_addresses=LOOPBACK, quality_interval_s=0)
    publisher = SyntheticPublisher(
        host_addresses=LOOPBACK, layers=("main",), cache_dir=clip_cache, codec="h264", audio=False
    )
    try:
        offer = (await publisher.create_offer()).replace("H264/90000", "H265/90000")
        specs = [TrackSpec(t.mid, t.source, t.layer) for t in publisher.tracks]
        with pytest.raises(MediaError) as refused:
            await service.publish("L", "lead", offer, specs)
        assert refused.value.code == "unsupported_codec"
        assert refused.value.message.startswith("m-line 0 offers H265:"), refused.value.message
        assert "H.264" in refused.value.message and not service.producers("L")
    finally:
        await publisher.close()
        await service.close()


# -- a High profile source, real receivers -----------------------------------------------


class Refusals:
    def __init__(self) -> None:
        self.reasons: list[tuple[str, str, str]] = []

    def subscribe_refused(self, lesson_id: str, peer_id: str, reason: str) -> None:
        self.reasons.append((lesson_id, peer_id, reason))


@pytest.fixture
async def high_source() -> AsyncIterator[tuple[MediaService, Refusals, str]]:
    """A 录播 host stand-in sending High profile H.264 + AAC, pulled into lesson L."""
    require_gstreamer()
    source = await RtspSourceProcess("--profile", "high", "--gop", "15").start()
    refusals = Refusals()
    service = MediaService(host_addresses=LOOPBACK, listener=refusals, quality_interval_s=0)
    statuses: list[RtspStatus] = []

    async def setup(tracks: list[LocalTrack]) -> list[Any]:
        return [p for _, p in service.publish_local("L", "rtsp-1", tracks)]

    ingest = RtspIngest(source.url, setup=setup, on_status=statuses.append)
    ingest.start()
    try:
        await wait_for(lambda: len(service.producers("L")) == 2, within=20)
        # The producers are published a moment before the status says live.
        await wait_for(lambda: ingest.status.state is RtspState.LIVE, within=10)
        plid = ingest.status.video.rsplit("(", 1)[1].rstrip(")")
        assert plid.startswith("64"), ingest.status.video  # x264 High, from the SPS
        yield service, refusals, plid
    finally:
        await ingest.close()
        await service.close()
        await source.kill()


async def test_an_aiortc_receiver_answers_high_and_decodes_it(high_source) -> None:
    service, refusals, plid = high_source
    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    try:
        result = await service.subscribe("L", "r", [p.id for p in service.producers("L")])
        assert result is not None
        offered = fmtp_lines(result.sdp)
        assert offered[0] == (
            f"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={plid}"
        )
        answer = await receiver.accept_offer(result.sdp)
        assert "profile-level-id=64" in fmtp_lines(answer)[0]  # High kept (aiortc's level)
        assert await service.answer("r", answer) is None
        await wait_for(lambda: receiver.decoded["video"] >= 30 and receiver.decoded["audio"] > 10)
        video = next(c for c in service.consumers("r") if c.kind == "video")
        params = service.consumer("r", video.producer_id).params
        assert params.codec.parameters["profile-level-id"] == plid
        assert receiver.decode_errors == 0 and receiver.video_sizes[-1] == (640, 360)
        assert refusals.reasons == []
    finally:
        await receiver.close()


def rejected_as_chromium_writes_it(answer: str, kind: str) -> str:
    """The answer with the ``kind`` m-line rejected as Chromium rejects a codec it cannot
    decode: port 0, payload type 0 without rtpmap, no transport lines, outside BUNDLE."""
    head, *sections = answer.split("\r\nm=")
    out = [head]
    for section in sections:
        lines = section.split("\r\n")
        if lines[0].startswith(kind):
            mid = next(line for line in lines if line.startswith("a=mid:"))
            kept = [f"{kind} 0 UDP/TLS/RTP/SAVPF 0", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
                    "a=setup:active", mid, "a=recvonly", "a=rtcp-mux"]  # fmt: skip
            out.append("\r\n".join([*kept, ""]))
            bundle = mid.split(":", 1)[1]
            out[0] = re.sub(rf"(a=group:BUNDLE[^\r\n]*?) {bundle}\b", r"\1", out[0])
        else:
            out.append(section)
    return "\r\nm=".join(out)


async def test_a_receiver_that_rejects_the_video_is_told_and_still_hears_the_audio(
    high_source,
) -> None:
    service, refusals, plid = high_source
    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    try:
        result = await service.subscribe("L", "r", [p.id for p in service.producers("L")])
        assert result is not None
        answer = rejected_as_chromium_writes_it(await receiver.accept_offer(result.sdp), "video")
        assert "m=video 0 " in answer
        assert await service.answer("r", answer) is None
        assert [(lesson, peer) for lesson, peer, _ in refusals.reasons] == [("L", "r")]
        reason = refusals.reasons[0][2]
        assert "video camera of peer rtsp-1 cannot be received" in reason
        assert "H.264 High" in reason and plid in reason and "port 0" in reason
        # The video m-line carries nothing (no consumer); the audio plays.
        await wait_for(lambda: receiver.decoded["audio"] > 10)
        kinds = {c.producer_id: c.kind for c in service.consumers("r")}
        made = {kind for pid, kind in kinds.items() if service.consumer("r", pid) is not None}
        assert made == {"audio"} and receiver.decoded["video"] == 0
    finally:
        await receiver.close()


async def test_an_answer_keeping_only_packetization_mode_0_is_refused(clip_cache) -> None:
    service = MediaService(host_addresses=LOOPBACK, listener=(refusals := Refusals()))
    publisher, producers = await publish(service, "L", "lead", clip_cache, codec="h264")
    receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    try:
        result = await service.subscribe("L", "r", [p.id for p in producers])
        assert result is not None
        answer = (await receiver.accept_offer(result.sdp)).replace(
            "packetization-mode=1", "packetization-mode=0"
        )
        await service.answer("r", answer)
        assert len(refusals.reasons) == 1
        assert "keeps none of the offered codecs" in refusals.reasons[0][2]
        assert "packetization-mode 0" in refusals.reasons[0][2]
        await wait_for(lambda: receiver.streams != {})  # the audio flows
        kinds = {c.producer_id: c.kind for c in service.consumers("r")}
        made = {kind for pid, kind in kinds.items() if service.consumer("r", pid) is not None}
        assert made == {"audio"}
    finally:
        await receiver.close()
        await publisher.close()
        await service.close()


# Chromium answers the SFU's offer in a blank page (no service, no signaling): what a
# classroom page's RTCPeerConnection does with it.
ANSWER_JS = """async (offer) => {
  const pc = window.pc || (window.pc = new RTCPeerConnection({bundlePolicy: 'max-bundle'}));
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== 'complete') await new Promise(done =>
    pc.addEventListener('icegatheringstatechange',
                        () => pc.iceGatheringState === 'complete' && done()));
  return pc.localDescription.sdp;
}"""
STATS_JS = """async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp') out[s.kind] = {
      frames: s.framesDecoded || 0, width: s.frameWidth || 0, packets: s.packetsReceived,
      keyframes: s.keyFramesDecoded || 0};
  });
  return out;
}"""
DECLARED_JS = """() => RTCRtpReceiver.getCapabilities('video').codecs
  .filter(c => /h264/i.test(c.mimeType)).map(c => c.sdpFmtpLine)"""


@pytest.mark.browser
async def test_chromium_plays_a_high_profile_source(high_source) -> None:
    async_api = pytest.importorskip("playwright.async_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    service, refusals, plid = high_source
    flags = ["--no-sandbox", "--disable-gpu", "--allow-loopback-in-peer-connection",
             "--disable-features=WebRtcHideLocalIpsWithMdns"]  # fmt: skip
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            page = await browser.new_page()
            declared = await page.evaluate(DECLARED_JS)
            result = await service.subscribe("L", "c", [p.id for p in service.producers("L")])
            assert result is not None and f"profile-level-id={plid}" in fmtp_lines(result.sdp)[0]
            answer = await page.evaluate(ANSWER_JS, result.sdp)
            assert await service.answer("c", answer) is None
            kept = fmtp_lines(answer)[0]
            # Chromium keeps High where it declares it; without a hardware decoder it declares
            # Constrained Baseline and Main only, keeps Constrained Baseline, and its software
            # decoder plays the High stream all the same.
            if any("profile-level-id=64" in line for line in declared):
                assert "profile-level-id=64" in kept, (declared, kept)
            else:
                assert f"profile-level-id={FALLBACK_PROFILE_LEVEL_ID}" in kept, (declared, kept)
            stats: dict[str, Any] = {}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while loop.time() < deadline:
                stats = await page.evaluate(STATS_JS)
                if stats.get("video", {}).get("frames", 0) >= 30:
                    break
                await asyncio.sleep(0.2)
            video = stats.get("video", {})
            assert video.get("frames", 0) >= 30 and video.get("width") == 640, stats
            assert stats.get("audio", {}).get("packets", 0) > 0, stats
            assert refusals.reasons == []
        finally:
            await browser.close()

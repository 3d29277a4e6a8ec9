"""RED (RFC 2198) negotiation toward subscribers: offered over Opus, sent when kept.

A subscriber's Opus m-line is offered as Opus then ``red/48000/2`` (fmtp ``<opus>/<opus>``);
an answer keeping RED and Opus (in either order) gets RED (a ``RedConsumer``), an answer
with Opus alone (aiortc, GStreamer's webrtcbin, older browsers) gets plain Opus. A relay
to another node is offered Opus alone. Real aiortc peers on loopback; answers edited as
Chromium writes them (Chromium itself: tests/web/test_browser_poor_network.py).
"""

from __future__ import annotations

import re

import pytest
from sfu_support import LOOPBACK, publish, wait_for

from media.codecs import CodecInfo
from media.consumer import SimpleConsumer
from media.negotiation import RED_PAYLOAD_TYPE
from media.red import RedConsumer
from media.sfu import MediaService
from media.synthetic.peers import SyntheticReceiver
from media.transport import WebRtcTransport

OPUS = CodecInfo("audio/opus", 48000, 111, channels=2)
VP8 = CodecInfo("video/VP8", 90000, 96, rtx_payload_type=97)


def audio_lines(sdp: str) -> list[str]:
    """The audio m-line and its rtpmap/fmtp lines."""
    section = sdp.split("m=audio", 1)[1].split("\r\nm=", 1)[0]
    lines = ("m=audio" + section).split("\r\n")
    return [line for line in lines if line.startswith(("m=audio", "a=rtpmap", "a=fmtp"))]


def with_red(
    answer: str,
    offer: str,
    *,
    red_first: bool = False,
    fmtp: str | None = None,
    alone: bool = False,
) -> str:
    """The answer keeping the offer's RED on its audio m-line as Chromium answers it (after
    Opus, the offer's order, with the offer's fmtp); or first, with another fmtp, or alone."""
    red_pt = re.search(r"a=rtpmap:(\d+) red/48000/2", offer).group(1)  # type: ignore[union-attr]
    opus_pt = re.search(r"a=rtpmap:(\d+) opus/48000/2", answer).group(1)  # type: ignore[union-attr]
    fmtp = fmtp if fmtp is not None else f"{opus_pt}/{opus_pt}"
    m_line = re.search(r"(m=audio \d+ \S+) ([\d ]+)", answer)
    assert m_line is not None
    pts = [red_pt] if alone else [red_pt, opus_pt] if red_first else [opus_pt, red_pt]
    answer = answer.replace(m_line.group(0), f"{m_line.group(1)} {' '.join(pts)}")
    opus = f"a=rtpmap:{opus_pt} opus/48000/2\r\n"
    red = f"a=rtpmap:{red_pt} red/48000/2\r\na=fmtp:{red_pt} {fmtp}\r\n"
    return answer.replace(opus, red if alone else red + opus if red_first else opus + red)


async def test_a_subscribers_opus_is_offered_with_red_first_and_a_relays_opus_without() -> None:
    subscriber = WebRtcTransport("s", "recv", host_addresses=LOOPBACK)
    relay = WebRtcTransport("r", "recv", host_addresses=LOOPBACK)
    try:
        track = subscriber.add_outgoing(OPUS, "s", "a", red=True)
        subscriber.add_outgoing(VP8, "s", "v", red=True)  # video: nothing to add
        relay.add_outgoing(OPUS, "s", "a")
        offer = await subscriber.create_offer()
        assert track.params is not None
        opus_pt = track.params.codec.payload_type
        assert audio_lines(offer)[1:] == [
            f"a=rtpmap:{opus_pt} opus/48000/2",
            f"a=rtpmap:{RED_PAYLOAD_TYPE} red/48000/2",
            f"a=fmtp:{RED_PAYLOAD_TYPE} {opus_pt}/{opus_pt}",
        ]
        assert audio_lines(offer)[0].endswith(f" {opus_pt} {RED_PAYLOAD_TYPE}")
        assert "red/" not in offer.split("m=video", 1)[1]
        assert "red/48000" not in await relay.create_offer()
        # A re-offer lists it again on the same payload type.
        assert f"a=rtpmap:{RED_PAYLOAD_TYPE} red/48000/2" in await subscriber.create_offer()
    finally:
        await subscriber.close()
        await relay.close()


@pytest.mark.parametrize(
    ("edit", "red_pt"),
    [
        ("none", None),  # aiortc answers Opus alone (so does webrtcbin: the first it takes)
        ("red after opus", RED_PAYLOAD_TYPE),  # as Chromium answers
        ("red first", RED_PAYLOAD_TYPE),  # a receiver that prefers it
        ("red over another codec", None),  # fmtp naming a payload type that is not our Opus
    ],
)
async def test_the_answer_decides_whether_red_is_sent(edit: str, red_pt: int | None) -> None:
    transport = WebRtcTransport("t", "recv", host_addresses=LOOPBACK)
    receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    try:
        track = transport.add_outgoing(OPUS, "s", "a", red=True)
        offer = await transport.create_offer()
        answer = await receiver.accept_offer(offer)
        assert "red/48000" not in answer
        if edit == "red after opus":
            answer = with_red(answer, offer)
        elif edit == "red first":
            answer = with_red(answer, offer, red_first=True)
        elif edit == "red over another codec":
            answer = with_red(answer, offer, fmtp="111/111")
        assert await transport.accept_answer(answer) == []
        assert track.params is not None
        assert track.params.codec.mime_type.lower() == "audio/opus"
        assert track.params.codec.red_payload_type == red_pt
    finally:
        await receiver.close()
        await transport.close()


async def test_an_answer_keeping_red_without_its_opus_is_refused() -> None:
    transport = WebRtcTransport("t", "recv", host_addresses=LOOPBACK)
    receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    try:
        track = transport.add_outgoing(OPUS, "s", "a", red=True)
        offer = await transport.create_offer()
        answer = with_red(await receiver.accept_offer(offer), offer, alone=True)
        assert await transport.accept_answer(answer) == [track]
        assert "keeps none of the offered codecs" in track.refused, track.refused
    finally:
        await receiver.close()
        await transport.close()


async def test_a_subscriber_answering_red_gets_red_and_one_without_gets_plain_opus(
    clip_cache,
) -> None:
    service = MediaService(host_addresses=LOOPBACK, quality_interval_s=0)
    publisher, producers = await publish(service, "L", "lead", clip_cache)
    (mic,) = [p.id for p in producers if p.kind == "audio"]
    with_red_receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    plain_receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    try:
        result = await service.subscribe("L", "red", [mic])
        assert result is not None
        answer = with_red(await with_red_receiver.accept_offer(result.sdp), result.sdp)
        assert await service.answer("red", answer) is None
        result = await service.subscribe("L", "plain", [mic])
        assert result is not None
        assert await service.answer("plain", await plain_receiver.accept_offer(result.sdp)) is None

        # Consumers start once each transport connects.
        await wait_for(lambda: None not in (service.consumer(p, mic) for p in ("red", "plain")))
        red = service.consumer("red", mic)
        plain = service.consumer("plain", mic)
        assert isinstance(red, RedConsumer) and type(plain) is SimpleConsumer
        opus_pt = plain.params.codec.payload_type

        def audio_pt(receiver: SyntheticReceiver) -> int:
            streams = [s for s in receiver.streams.values() if s.packets > 20]
            return streams[0].payload_type if streams else -1

        await wait_for(lambda: audio_pt(with_red_receiver) >= 0 and audio_pt(plain_receiver) >= 0)
        assert audio_pt(with_red_receiver) == RED_PAYLOAD_TYPE
        assert audio_pt(plain_receiver) == opus_pt
        await wait_for(lambda: plain_receiver.decoded["audio"] > 10)  # plain Opus decodes
        # Each RED packet also carries the one before: about twice the bytes per packet.
        per_packet = {
            name: c.stats().bytes_sent / c.stats().packets_sent
            for name, c in (("red", red), ("plain", plain))
        }
        assert per_packet["red"] > 1.5 * per_packet["plain"], per_packet
    finally:
        await with_red_receiver.close()
        await plain_receiver.close()
        await publisher.close()
        await service.close()

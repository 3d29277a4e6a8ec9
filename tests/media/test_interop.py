"""Interop with WebRTC stacks that are neither aiortc nor Chromium (real aiortc peers whose
offers are edited as GStreamer's webrtcbin and classroom terminals write them).

The SFU answers ``actpass`` as the DTLS server, completes handshakes with RSA certificates
either way, binds m-lines without ``a=ssrc`` by MID or payload type, reads extmap lines
with extension attributes, refuses offers/answers without BUNDLE or rtcp-mux naming the
feature, and reports a send transport that fails after its answer without ever offering
its producers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from cryptography.hazmat.primitives.asymmetric import rsa
from sfu_support import LOOPBACK, subscribe, wait_for

from media import aiortc_hooks as hooks
from media import sdp_compat
from media.sfu import MediaError, MediaService, ProducerInfo, TrackSpec
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver

DATA = Path(__file__).parent / "data" / "sdp"


class Events:
    def __init__(self) -> None:
        self.added: list[ProducerInfo] = []
        self.removed: list[ProducerInfo] = []
        self.failed: list[tuple[str, str, str]] = []

    def producer_added(self, info: ProducerInfo) -> None:
        self.added.append(info)

    def producer_removed(self, info: ProducerInfo) -> None:
        self.removed.append(info)

    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None:
        self.failed.append((lesson_id, peer_id, reason))


@pytest.fixture
async def events_service():  # type: ignore[no-untyped-def]
    events = Events()
    service = MediaService(host_addresses=LOOPBACK, listener=events, quality_interval_s=0)
    yield events, service
    await service.close()


def fixture(name: str) -> str:
    return (DATA / name).read_bytes().decode()  # CRLF kept, as on the wire


def rsa_certificate() -> RTCCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RTCCertificate(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]


def without(sdp: str, *prefixes: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefixes))


async def publish_edited(
    service: MediaService,
    peer: str,
    cache: Path,
    edit: Callable[[str], str] = lambda sdp: sdp,
    **options: object,
) -> tuple[SyntheticPublisher, str, list[ProducerInfo]]:
    publisher = SyntheticPublisher(
        host_addresses=LOOPBACK, layers=("main",), cache_dir=cache, **options
    )
    offer = edit(await publisher.create_offer())
    specs = [TrackSpec(t.mid, t.source, t.layer) for t in publisher.tracks]
    result = await service.publish("L", peer, offer, specs)
    await publisher.accept_answer(result.sdp)
    return publisher, result.sdp, list(result.producers)


async def plays(service: MediaService, producers: list[ProducerInfo], peer: str = "r") -> None:
    receiver = await subscribe(service, "L", peer, [p.id for p in producers])
    try:
        await wait_for(lambda: receiver.decoded["video"] >= 10 and receiver.decoded["audio"] >= 5)
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()


# -- SDP text ----------------------------------------------------------------------------


def test_extmap_attributes_are_dropped_and_everything_else_is_kept() -> None:
    offer = fixture("gstreamer_publish_offer.sdp")
    normalized = sdp_compat.normalize(offer)
    assert "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" in normalized
    assert "vad=on" not in normalized
    assert normalized.replace("\r\n", "") == offer.replace(" vad=on", "").replace("\r\n", "")
    media = hooks.parse_sdp(normalized).media
    assert [m.rtp.headerExtensions[0].uri for m in media if m.kind == "audio"] == [
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    ]
    assert [m.ssrc for m in media] == [[], []]  # GStreamer's offer announces no SSRC


def test_a_description_without_bundle_or_rtcp_mux_names_the_missing_feature() -> None:
    from media.negotiation import NegotiationError

    offer = sdp_compat.normalize(fixture("gstreamer_publish_offer.sdp"))
    sdp_compat.check_transport_features(hooks.parse_sdp(offer), what="offer", code="bad_offer")
    with pytest.raises(NegotiationError) as bundle:
        sdp_compat.check_transport_features(
            hooks.parse_sdp(without(offer, "a=group:BUNDLE")), what="offer", code="bad_offer"
        )
    assert bundle.value.code == "bad_offer"
    assert bundle.value.message.startswith("The offer bundles no m-line video0, audio1")
    assert "BUNDLE" in bundle.value.message
    with pytest.raises(NegotiationError) as mux:
        sdp_compat.check_transport_features(
            hooks.parse_sdp(without(offer, "a=rtcp-mux")), what="answer", code="bad_answer"
        )
    assert mux.value.code == "bad_answer"
    assert mux.value.message == (
        "m-line video0 of the answer has no a=rtcp-mux: tongke needs RTCP on the RTP port "
        "(rtcp-mux, RFC 5761)."
    )


# -- real peers --------------------------------------------------------------------------


async def test_an_actpass_offer_is_answered_passive_and_the_sfu_is_the_dtls_server(
    events_service, clip_cache
) -> None:
    _events, service = events_service
    publisher, answer, producers = await publish_edited(service, "lead", clip_cache)
    try:
        assert "a=setup:actpass" not in answer and "a=setup:passive" in answer
        send = service.transport("lead", "send")
        assert send is not None and hooks.dtls_role(send._pc) == "server"
        await plays(service, producers)
    finally:
        await publisher.close()


@pytest.mark.parametrize("setup", ["actpass", "passive"])
async def test_a_publisher_with_an_rsa_certificate_connects_whichever_side_is_dtls_client(
    events_service, clip_cache, setup: str
) -> None:
    # passive: the publisher insists on being the DTLS server, so the SFU is the client of
    # an RSA peer (aiortc alone offers only ECDSA suites: "no shared cipher").
    events, service = events_service
    publisher, answer, producers = await publish_edited(
        service,
        "lead",
        clip_cache,
        lambda sdp: sdp.replace("a=setup:actpass", f"a=setup:{setup}"),
        certificate=rsa_certificate(),
    )
    try:
        assert ("a=setup:active" if setup == "passive" else "a=setup:passive") in answer
        await wait_for(lambda: len(events.added) == 2)
        await plays(service, producers)
        assert events.failed == []
    finally:
        await publisher.close()


@pytest.mark.parametrize("mid_extension", [True, False], ids=["by-mid", "by-payload-type"])
async def test_m_lines_without_a_ssrc_are_bound_to_their_first_packet_and_play(
    events_service, clip_cache, mid_extension: bool
) -> None:
    events, service = events_service

    def edit(sdp: str) -> str:
        sdp = without(sdp, "a=ssrc", "a=msid:")
        return sdp if mid_extension else without(sdp, "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes")

    publisher, _answer, producers = await publish_edited(service, "lead", clip_cache, edit)
    try:
        assert all(service.producer(p.id).ssrc == 0 for p in producers)
        await wait_for(lambda: len(events.added) == 2)
        bound = {p.kind: service.producer(p.id).ssrc for p in producers}
        sent = {kind: hooks.sender_ssrcs(s)[0] for s, kind, *_ in publisher._senders}
        assert bound == sent
        await plays(service, producers)
    finally:
        await publisher.close()


async def test_an_extmap_with_extension_attributes_is_accepted(events_service, clip_cache) -> None:
    _events, service = events_service

    def edit(sdp: str) -> str:
        return sdp.replace(
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on",
        )

    publisher, _, producers = await publish_edited(service, "lead", clip_cache, edit)
    try:
        await plays(service, producers)
    finally:
        await publisher.close()


async def test_an_offer_without_bundle_or_rtcp_mux_is_refused_and_leaves_nothing(
    events_service, clip_cache
) -> None:
    _events, service = events_service
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), cache_dir=clip_cache)
    try:
        offer = await publisher.create_offer()
        specs = [TrackSpec(t.mid, t.source, t.layer) for t in publisher.tracks]
        for edited, feature in (
            (without(offer, "a=group:BUNDLE"), "BUNDLE"),
            (without(offer, "a=rtcp-mux"), "rtcp-mux"),
        ):
            with pytest.raises(MediaError) as refused:
                await service.publish("L", "lead", edited, specs)
            assert refused.value.code == "bad_offer" and feature in refused.value.message
        assert service.producers("L") == [] and service.transport("lead", "send") is None
        result = await service.publish("L", "lead", offer, specs)  # the real one still works
        await publisher.accept_answer(result.sdp)
        await plays(service, list(result.producers))
    finally:
        await publisher.close()


async def test_a_subscribe_answer_without_bundle_is_refused(events_service, clip_cache) -> None:
    _events, service = events_service
    publisher, _, producers = await publish_edited(service, "lead", clip_cache)
    receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    try:
        offer = await service.subscribe("L", "r", [p.id for p in producers])
        assert offer is not None
        answer = await receiver.accept_offer(offer.sdp)
        with pytest.raises(MediaError) as refused:
            await service.answer("r", without(answer, "a=group:BUNDLE"))
        assert refused.value.code == "bad_answer" and "BUNDLE" in refused.value.message
    finally:
        await receiver.close()
        await publisher.close()


async def test_a_send_transport_failing_after_its_answer_is_reported_and_never_offered(
    events_service, clip_cache
) -> None:
    events, service = events_service

    def wrong_fingerprint(sdp: str) -> str:
        lines = sdp.split("\r\n")
        for i, line in enumerate(lines):
            if line.startswith("a=fingerprint:sha-256 "):
                lines[i] = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32)
        return "\r\n".join(lines)

    publisher, _answer, producers = await publish_edited(
        service, "lead", clip_cache, wrong_fingerprint
    )
    try:
        assert len(producers) == 2  # the answer went out as usual ...
        await wait_for(lambda: events.failed != [])
        lesson, peer, reason = events.failed[0]
        assert (lesson, peer) == ("L", "lead") and "fingerprint mismatch" in reason
        # ... but nobody was ever offered its producers, and they are gone.
        assert events.added == [] and events.removed == []
        assert service.producers("L") == [] and service.transport("lead", "send") is None
        with pytest.raises(MediaError):
            await service.subscribe("L", "r", [p.id for p in producers])
    finally:
        await publisher.close()
    again, _, fresh = await publish_edited(service, "lead", clip_cache)  # publishing again works
    try:
        await wait_for(lambda: len(events.added) == 2)
        await plays(service, fresh)
    finally:
        await again.close()


async def test_a_gstreamer_offer_is_answered_passive_with_ssrc_less_tracks() -> None:
    from media.transport import WebRtcTransport

    transport = WebRtcTransport("t", "send", host_addresses=LOOPBACK)
    try:
        offer = fixture("gstreamer_publish_offer.sdp")
        answer, tracks = await transport.accept_offer(offer)
        assert [(t.mid, t.kind, t.params.ssrc) for t in tracks] == [
            ("video0", "video", 0),
            ("audio1", "audio", 0),
        ]
        assert "a=setup:passive" in answer and "a=group:BUNDLE video0 audio1" in answer
    finally:
        await transport.close()

"""WebRtcTransport over real ICE/DTLS/SRTP on loopback with aiortc peers."""

import asyncio

import pytest

from media import aiortc_hooks as hooks
from media.codecs import ABS_SEND_TIME, SDES_MID
from media.rtp import RtpPacket
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from media.transport import TransportError, TransportState, WebRtcTransport

LOOPBACK = ["127.0.0.1"]


class Recorder:
    """A stand-in stream end that keeps what the transport hands it."""

    kind = "audio"

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.reports: list[object] = []
        self.nacks: list[list[int]] = []
        self.key_requests = 0

    def receive_rtp(self, packet: RtpPacket, arrival_ms: int) -> None:
        self.packets.append(packet)

    def receive_sender_report(self, report: object, arrival_ms: int) -> None:
        self.reports.append(report)

    def get_rtcp(self, now_ms: int) -> list[bytes]:
        return []

    def receive_nack(self, seqs: list[int]) -> None:
        self.nacks.append(list(seqs))

    def receive_key_frame_request(self) -> None:
        self.key_requests += 1

    def receive_remb(self, bitrate_bps: int) -> None:
        return None

    def receive_receiver_report(self, block: object) -> None:
        self.reports.append(block)


async def wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_send_transport_answers_an_offer_and_routes_raw_rtp_by_ssrc(clip_cache) -> None:
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, cache_dir=clip_cache)
    transport = WebRtcTransport("t1", "send", host_addresses=LOOPBACK)
    try:
        answer, tracks = await transport.accept_offer(await publisher.create_offer())
        assert [(t.mid, t.kind) for t in tracks] == [(p.mid, p.kind) for p in publisher.tracks]
        video, _low, audio = (t.params for t in tracks)
        assert video.codec.mime_type == "video/VP8" and video.codec.rtx_payload_type is not None
        assert audio.codec.mime_type == "audio/opus" and audio.rtx_ssrc is None
        assert video.header_extensions[SDES_MID] and video.header_extensions[ABS_SEND_TIME]
        assert answer.count("a=rtpmap:") == 5  # one codec per m-line, plus RTX for video
        recorders = {t.mid: Recorder() for t in tracks}
        for t in tracks:
            transport.attach_producer(recorders[t.mid], t.params)
        await publisher.accept_answer(answer)
        await wait_for(lambda: all(len(r.packets) > 20 for r in recorders.values()))
        assert transport.state is TransportState.CONNECTED
        assert {p.ssrc for p in recorders[tracks[0].mid].packets} == {video.ssrc}
        assert {p.payload_type for p in recorders[tracks[2].mid].packets} == {
            audio.codec.payload_type
        }
        await wait_for(lambda: any(r.reports for r in recorders.values()), within=5)
        assert transport.stats()["rtp_parse_errors"] == 0
    finally:
        await publisher.close()
        await transport.close()
    assert transport.state is TransportState.CLOSED
    await transport.close()  # idempotent


async def test_send_transport_refuses_a_recvonly_offer_with_a_stable_code() -> None:
    receiver_side = SyntheticReceiver(host_addresses=LOOPBACK)
    offerer = receiver_side.pc
    offerer.addTransceiver("video", direction="recvonly")
    await offerer.setLocalDescription(await offerer.createOffer())
    transport = WebRtcTransport("t2", "send", host_addresses=LOOPBACK)
    try:
        with pytest.raises(TransportError) as info:
            await transport.accept_offer(offerer.localDescription.sdp)
        assert info.value.code == "bad_offer"
        assert "must be sendonly, not recvonly" in info.value.message
        with pytest.raises(TransportError) as bad:
            await transport.accept_offer("v=0\r\nthis is not sdp")
        assert bad.value.code in ("bad_sdp", "bad_offer")
    finally:
        await receiver_side.close()
        await transport.close()


async def test_receive_transport_offers_sendonly_tracks_and_sends_raw_rtp(clip_cache) -> None:
    from media.codecs import CodecInfo

    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)  # it sends RRs
    transport = WebRtcTransport("t3", "recv", host_addresses=LOOPBACK)
    try:
        track = transport.add_outgoing(CodecInfo("audio/opus", 48000, 111, channels=2), "s", "a")
        offer = await transport.create_offer()
        assert "a=sendonly" in offer and "a=msid:s a" in offer
        assert track.params is not None and track.params.mid == track.mid
        answer = await receiver.accept_offer(offer)
        await transport.accept_answer(answer)
        feedback = Recorder()
        transport.attach_consumer(feedback, track.params)
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        payload = bytes(clip_packet(clip_cache))
        for seq in range(50):
            packet = RtpPacket(
                payload_type=track.params.codec.payload_type,
                sequence_number=seq,
                timestamp=seq * 960,
                ssrc=track.params.ssrc,
                marker=True,
                payload=payload,
            )
            transport.send_rtp(bytes(packet))
            await asyncio.sleep(0.005)
        await wait_for(lambda: receiver.streams.get(track.params.ssrc) is not None)
        await wait_for(lambda: receiver.streams[track.params.ssrc].packets == 50)
        assert receiver.streams[track.params.ssrc].lost == 0
        await wait_for(lambda: feedback.reports, within=5)  # the receiver's RR came back
        with pytest.raises(TransportError) as info:
            await transport.accept_answer(answer)
        assert info.value.code == "bad_answer"
    finally:
        await receiver.close()
        await transport.close()


def clip_packet(cache) -> bytes:  # type: ignore[no-untyped-def]
    from media.synthetic import clip

    return clip.load_audio(10, cache)[0].data


def test_transport_direction_is_checked() -> None:
    with pytest.raises(
        ValueError, match=r"Transport direction must be 'send' or 'recv', got 'x'\."
    ):
        WebRtcTransport("t", "x")
    assert hooks.AIORTC_VERSION == "1.16.0"


async def test_an_offer_without_a_forwardable_codec_is_refused_before_applying_it(
    clip_cache,
) -> None:
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=(), cache_dir=clip_cache)
    transport = WebRtcTransport("t4", "send", host_addresses=LOOPBACK)
    try:
        offer = await publisher.create_offer()
        pcmu_only = "\r\n".join(
            line
            for line in offer.replace(
                "m=audio 9 UDP/TLS/RTP/SAVPF 96 9 0 8", "m=audio 9 UDP/TLS/RTP/SAVPF 0"
            ).split("\r\n")
            if not line.startswith(("a=rtpmap:96", "a=rtpmap:9 ", "a=rtpmap:8 ", "a=fmtp:96"))
        )
        with pytest.raises(TransportError) as codec:
            await transport.accept_offer(pcmu_only)
        assert codec.value.code == "unsupported_codec"
        answer, tracks = await transport.accept_offer(offer)  # still usable afterwards
        assert [t.kind for t in tracks] == ["audio"] and "a=recvonly" in answer
    finally:
        await publisher.close()
        await transport.close()

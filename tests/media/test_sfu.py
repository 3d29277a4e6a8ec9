"""The SFU end to end: a synthetic lead publishes VP8 + Opus, subscribers decode it.

Real ICE/DTLS/SRTP on loopback; packets are forwarded at the RTP level (no server decode).
"""

from __future__ import annotations

import pytest
from sfu_support import LOOPBACK, publish, subscribe, video_ssrc, wait_for

from media.rtcp import RtcpPliPacket
from media.sfu import MediaError, MediaService, TrackSpec


@pytest.fixture
async def service():  # type: ignore[no-untyped-def]
    svc = MediaService(ice_servers=[], host_addresses=LOOPBACK)
    yield svc
    await svc.close()


async def test_three_subscribers_receive_and_decode_the_leads_video_and_audio(
    service, clip_cache
) -> None:
    lead, producers = await publish(service, "L1", "lead", clip_cache)
    assert [(p.kind, p.source, p.layer) for p in producers] == [
        ("video", "camera", "main"),
        ("audio", "mic", "main"),
    ]
    assert [p.id for p in service.producers("L1")] == [p.id for p in producers]
    ids = [p.id for p in producers]
    receivers = [await subscribe(service, "L1", f"r{i}", ids) for i in range(3)]
    try:
        await wait_for(lambda: all(r.decoded["video"] >= 30 for r in receivers))
        await wait_for(lambda: all(r.decoded["audio"] >= 30 for r in receivers))
        for i, receiver in enumerate(receivers):
            assert receiver.decode_errors == 0
            (video,) = receiver.of_kind("video")
            assert video.first_frame_keyframe is True
            assert receiver.video_sizes[0] == (640, 480)
            assert video_ssrc(service, f"r{i}") in receiver.streams
        # The server never decoded: the raw path saw no parse errors and nothing unknown.
        stats = service.transport("lead", "send").stats()
        assert stats["rtp_parse_errors"] == 0 and stats["unknown_ssrc_packets"] == 0
        assert lead.nacks_received == 0
    finally:
        for receiver in receivers:
            await receiver.close()
        await lead.close()


async def test_a_late_joiners_first_frame_is_a_keyframe(service, clip_cache) -> None:
    lead, producers = await publish(service, "L2", "lead", clip_cache)
    ids = [p.id for p in producers]
    early = await subscribe(service, "L2", "early", ids)
    try:
        await wait_for(lambda: early.decoded["video"] >= 40)
        late = await subscribe(service, "L2", "late", ids)
        await wait_for(lambda: late.decoded["video"] >= 5)
        (video,) = late.of_kind("video")
        assert video.first_frame_keyframe is True
        assert late.decode_errors == 0 and early.decode_errors == 0
        await late.close()
    finally:
        await early.close()
        await lead.close()


async def test_a_subscribers_pli_makes_exactly_one_keyframe_request_upstream(
    service, clip_cache
) -> None:
    lead, producers = await publish(service, "L3", "lead", clip_cache)
    receiver = await subscribe(service, "L3", "r", [p.id for p in producers])
    try:
        await wait_for(lambda: receiver.decoded["video"] >= 30)
        await wait_for(lambda: lead.keyframe_requests >= 1)  # the join asked for one
        before = lead.keyframe_requests
        ssrc = video_ssrc(service, "r")
        burst = bytes(RtcpPliPacket(sender_ssrc=1, media_ssrc=ssrc))
        for _ in range(3):  # three PLIs at once are aggregated into one request
            await receiver.send_rtcp(burst)
        await wait_for(lambda: lead.keyframe_requests > before, within=5)
        await wait_for(lambda: receiver.decoded["video"] >= 45)
        assert lead.keyframe_requests == before + 1
        consumer = service.consumer("r", producers[0].id)
        assert consumer.stats().key_frame_requests_received >= 3
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()


async def test_publish_refuses_bad_track_descriptions_with_stable_codes(
    service, clip_cache
) -> None:
    from media.synthetic.peers import SyntheticPublisher

    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), cache_dir=clip_cache)
    try:
        offer = await publisher.create_offer()
        video_mid, audio_mid = (t.mid for t in publisher.tracks)
        cases = [
            ([TrackSpec(video_mid, "camera")], "bad_track"),  # the audio m-line is undescribed
            ([TrackSpec(video_mid, "mic"), TrackSpec(audio_mid, "mic")], "bad_track"),
            ([TrackSpec(video_mid, "camera", "huge"), TrackSpec(audio_mid, "mic")], "bad_track"),
            ([TrackSpec(video_mid, "tv"), TrackSpec(audio_mid, "mic")], "bad_track"),
        ]
        for specs, code in cases:
            with pytest.raises(MediaError) as info:
                await service.publish("L4", "p", offer, specs)
            assert info.value.code == code
        assert service.producers("L4") == []
        with pytest.raises(MediaError) as bad:
            await service.publish("L4", "p", "garbage", [])
        assert bad.value.code in ("bad_sdp", "bad_offer")
    finally:
        await publisher.close()


async def test_subscribe_and_answer_refuse_bad_requests_with_stable_codes(
    service, clip_cache
) -> None:
    lead, producers = await publish(service, "L5", "lead", clip_cache)
    try:
        with pytest.raises(MediaError) as unknown:
            await service.subscribe("L5", "r", ["nope"])
        assert unknown.value.code == "unknown_producer"
        with pytest.raises(MediaError) as own:
            await service.subscribe("L5", "lead", [producers[0].id])
        assert own.value.code == "own_producer"
        with pytest.raises(MediaError) as other_lesson:
            await service.subscribe("L6", "r2", [producers[0].id])
        assert other_lesson.value.code == "unknown_producer"
        with pytest.raises(MediaError) as no_offer:
            await service.answer("lead", "v=0")
        assert no_offer.value.code == "no_offer"
        with pytest.raises(MediaError) as nobody:
            await service.answer("ghost", "v=0")
        assert nobody.value.code == "unknown_peer"
        assert await service.subscribe("L5", "r3", []) is None
    finally:
        await lead.close()


async def test_unsubscribing_and_a_leaving_publisher_renegotiate_the_receive_transport(
    service, clip_cache
) -> None:
    events: list[tuple[str, str]] = []

    class Listener:
        def producer_added(self, info) -> None:  # type: ignore[no-untyped-def]
            events.append(("added", info.id))

        def producer_removed(self, info) -> None:  # type: ignore[no-untyped-def]
            events.append(("removed", info.id))

        def active_speaker(self, lesson_id, peer_id) -> None:  # type: ignore[no-untyped-def]
            pass

        def peer_quality(self, lesson_id, peer_id, quality) -> None:  # type: ignore[no-untyped-def]
            pass

        def transport_state(self, peer_id, direction, state) -> None:  # type: ignore[no-untyped-def]
            pass

        def renegotiation_needed(self, peer_id) -> None:  # type: ignore[no-untyped-def]
            events.append(("renegotiate", peer_id))

    svc = MediaService(host_addresses=LOOPBACK, listener=Listener())
    lead, producers = await publish(svc, "L7", "lead", clip_cache)
    video, audio = producers
    receiver = await subscribe(svc, "L7", "r", [video.id, audio.id])
    try:
        await wait_for(lambda: receiver.decoded["video"] >= 10)
        result = await svc.subscribe("L7", "r", [video.id])  # drop the audio
        assert result is not None and [c.kind for c in result.consumers] == ["video"]
        assert "a=inactive" in result.sdp
        assert await svc.answer("r", await receiver.accept_offer(result.sdp)) is None
        assert svc.consumer("r", audio.id) is None
        await svc.close_peer("lead")
        assert ("removed", video.id) in events and ("renegotiate", "r") in events
        result = await svc.resync("r")
        assert result is not None and result.consumers == ()
        await svc.answer("r", await receiver.accept_offer(result.sdp))
        assert svc.producers("L7") == []
    finally:
        await receiver.close()
        await lead.close()
        await svc.close()


async def test_h264_is_forwarded_with_the_publishers_codec_and_decodes(service, clip_cache) -> None:
    lead, producers = await publish(service, "L8", "lead", clip_cache, codec="h264")
    assert producers[0].mime_type == "video/H264"
    result = await service.subscribe("L8", "r", [p.id for p in producers])
    assert result is not None and "H264/90000" in result.sdp and "VP8" not in result.sdp
    assert "packetization-mode=1" in result.sdp
    from media.synthetic.peers import SyntheticReceiver

    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    try:
        assert await service.answer("r", await receiver.accept_offer(result.sdp)) is None
        await wait_for(lambda: receiver.decoded["video"] >= 20)
        (video,) = receiver.of_kind("video")
        assert video.first_frame_keyframe is True
        assert receiver.video_sizes == [(640, 480)] and receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()


async def test_raw_receivers_count_every_frame_without_decoding(service, clip_cache) -> None:
    from media.synthetic.peers import SyntheticReceiver

    lead, producers = await publish(service, "L9", "lead", clip_cache)
    ids = [p.id for p in producers]
    receivers = [
        await subscribe(service, "L9", f"raw{i}", ids, SyntheticReceiver(host_addresses=LOOPBACK))
        for i in range(5)
    ]
    try:
        await wait_for(
            lambda: all(
                r.of_kind("video") and r.of_kind("video")[0].frames >= 30 for r in receivers
            )
        )
        for receiver in receivers:
            (video,) = receiver.of_kind("video")
            (audio,) = receiver.of_kind("audio")
            assert video.first_frame_keyframe is True and video.first_packet_ms > 0
            assert video.lost == 0 and audio.packets > 0
            assert receiver.decoded == {"audio": 0, "video": 0}  # nothing was decoded
    finally:
        for receiver in receivers:
            await receiver.close()
        await lead.close()


async def test_packets_that_arrive_while_the_subscribers_dtls_finishes_are_not_lost(
    service, clip_cache
) -> None:
    """The SFU is the DTLS server of a receive transport: it is done (and sends the keyframe
    its new consumer waited for) one flight before the subscriber is. SRTP that arrives while
    the subscriber still processes that last flight has no keys to meet; aiortc drops it, so
    the raw link (media.aiortc_hooks.SrtpLink) holds it and hands it over once the keys
    exist. Without that the first frame counted was not the keyframe: the once-open bug of
    the raw-receiver test above, seen under load, where this window widens. Here the
    subscriber's handshake reads are slowed so that the window is wide on purpose. The SFU's
    own send transports (publishers are DTLS servers there) go through the same link."""
    import asyncio

    from media import aiortc_hooks as hooks
    from media.synthetic.peers import SyntheticReceiver

    lead, producers = await publish(service, "L10", "lead", clip_cache)
    receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    try:
        result = await service.subscribe("L10", "slow", [p.id for p in producers])
        assert result is not None
        answer = await receiver.accept_offer(result.sdp)
        dtls = hooks.dtls_transport_of(receiver.pc)
        assert dtls is not None
        original = dtls._recv_next

        async def slow_recv_next() -> None:
            if dtls._rx_srtp is None:  # handshake still running: a loaded machine
                await asyncio.sleep(0.4)
            await original()

        dtls._recv_next = slow_recv_next  # type: ignore[method-assign]
        assert await service.answer("slow", answer) is None
        await wait_for(
            lambda: bool(receiver.of_kind("video")) and receiver.of_kind("video")[0].frames >= 30
        )
        (video,) = receiver.of_kind("video")
        assert video.first_frame_keyframe is True and video.lost == 0
    finally:
        await receiver.close()
        await lead.close()

"""MediaService controls: pausing, quality events, re-offers and stats (real peers, loopback)."""

from __future__ import annotations

import asyncio

import pytest
from sfu_support import LOOPBACK, publish, subscribe, wait_for

from media.sfu import MediaError, MediaService, TrackSpec


class Events:
    """Collects what the service tells the signaling layer."""

    def __init__(self) -> None:
        self.quality: list[tuple[str, str, object]] = []
        self.states: list[tuple[str, str, str]] = []
        self.added: list[str] = []

    def producer_added(self, info) -> None:  # type: ignore[no-untyped-def]
        self.added.append(info.id)

    def producer_removed(self, info) -> None:  # type: ignore[no-untyped-def]
        pass

    def active_speaker(self, lesson_id, peer_id) -> None:  # type: ignore[no-untyped-def]
        pass

    def peer_quality(self, lesson_id, peer_id, quality) -> None:  # type: ignore[no-untyped-def]
        self.quality.append((lesson_id, peer_id, quality))

    def transport_state(self, peer_id, direction, state) -> None:  # type: ignore[no-untyped-def]
        self.states.append((peer_id, direction, state))

    def renegotiation_needed(self, peer_id) -> None:  # type: ignore[no-untyped-def]
        pass


async def test_pausing_a_consumer_stops_its_audio_and_resuming_restarts_it(clip_cache) -> None:
    events = Events()
    service = MediaService(host_addresses=LOOPBACK, listener=events, quality_interval_s=0.5)
    lead, producers = await publish(service, "L1", "lead", clip_cache)
    video, audio = producers
    receiver = await subscribe(service, "L1", "r", [video.id, audio.id])
    try:
        await wait_for(lambda: receiver.decoded["audio"] >= 20 and receiver.decoded["video"] >= 10)
        service.set_consumer_paused("r", audio.id, True)
        await asyncio.sleep(0.1)
        (audio_in,) = receiver.of_kind("audio")
        paused_at = audio_in.packets
        await asyncio.sleep(0.4)
        assert audio_in.packets == paused_at  # nothing flows while paused
        assert receiver.decoded["video"] > 10  # the video goes on
        service.set_consumer_paused("r", audio.id, False)
        await wait_for(lambda: audio_in.packets >= paused_at + 10)
        assert audio_in.lost == 0  # continuous sequence numbers across the pause
        with pytest.raises(MediaError) as info:
            service.set_consumer_paused("r", "nope", True)
        assert info.value.code == "unknown_consumer"
        await wait_for(lambda: any(peer == "r" for _, peer, _ in events.quality), within=5)
        quality = next(q for _, peer, q in events.quality if peer == "r")
        assert quality.level in ("good", "fair", "poor")
        assert quality.downstream.streams == 2
        assert ("r", "recv", "connected") in events.states
        assert ("lead", "send", "connected") in events.states
        stats = service.stats()
        assert stats["producers"] == 2 and stats["consumers"] == 2 and stats["peers"] == 2
        assert stats["rtp_parse_errors"] == 0
    finally:
        await receiver.close()
        await lead.close()
        await service.close()
    with pytest.raises(MediaError) as closed:
        await service.subscribe("L1", "late", [])
    assert closed.value.code == "media_closed"


async def test_a_paused_producer_stops_for_everyone_and_resumes_on_a_keyframe(
    clip_cache,
) -> None:
    service = MediaService(host_addresses=LOOPBACK)
    lead, producers = await publish(service, "L2", "lead", clip_cache)
    video = producers[0]
    receiver = await subscribe(service, "L2", "r", [p.id for p in producers])
    try:
        await wait_for(lambda: receiver.decoded["video"] >= 10)
        service.set_producer_paused(video.id, True)
        await asyncio.sleep(0.2)
        count = receiver.decoded["video"]
        await asyncio.sleep(0.3)
        assert receiver.decoded["video"] <= count + 1
        service.set_producer_paused(video.id, False)
        await wait_for(lambda: receiver.decoded["video"] >= count + 10)
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()
        await service.close()


async def test_a_publisher_can_add_a_track_with_a_second_offer(clip_cache) -> None:
    events = Events()
    service = MediaService(host_addresses=LOOPBACK, listener=events)
    lead, producers = await publish(service, "L3", "lead", clip_cache, layers=("main",))
    try:
        from media.synthetic import clip
        from media.synthetic.peers import ClipVideoTrack

        screen = ClipVideoTrack(clip.load_video(clip.LOW, clip_cache), 30)
        lead.pc.addTransceiver(screen, direction="sendonly")
        offer = await lead.create_offer()
        new_mid = lead.pc.getTransceivers()[-1].mid
        specs = [TrackSpec(p.mid, p.source, p.layer) for p in producers]
        result = await service.publish("L3", "lead", offer, [*specs, TrackSpec(new_mid, "screen")])
        await lead.accept_answer(result.sdp)
        assert [(p.source, p.mid) for p in result.producers] == [("screen", new_mid)]
        assert len(service.producers("L3")) == 3
        # Announced once the send transport is connected (the re-offer's one too).
        await wait_for(lambda: len(events.added) == 3)
        receiver = await subscribe(service, "L3", "r", [result.producers[0].id])
        await wait_for(lambda: receiver.decoded["video"] >= 10)
        assert receiver.video_sizes == [(320, 240)] and receiver.decode_errors == 0
        await receiver.close()
        from media.synthetic.peers import SyntheticPublisher

        twin = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main", "main"), audio=False)
        twin_offer = await twin.create_offer()
        with pytest.raises(MediaError) as dup:
            await service.publish(
                "L3", "twin", twin_offer, [TrackSpec(t.mid, "camera") for t in twin.tracks]
            )
        assert dup.value.code == "duplicate_track"
        await twin.close()
    finally:
        await lead.close()
        await service.close()


async def test_answered_tracks_flow_while_a_follow_up_offer_is_still_unanswered(
    clip_cache,
) -> None:
    from media.synthetic.peers import SyntheticReceiver

    service = MediaService(host_addresses=LOOPBACK)
    lead, (video, audio) = await publish(service, "L4", "lead", clip_cache)
    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    try:
        first = await service.subscribe("L4", "r", [video.id])
        assert first is not None
        assert await service.answer("r", await receiver.accept_offer(first.sdp)) is None
        second = await service.subscribe("L4", "r", [video.id, audio.id])
        assert second is not None and [c.kind for c in second.consumers] == ["video", "audio"]
        assert await service.subscribe("L4", "r", [video.id, audio.id]) is None  # pending
        await wait_for(lambda: receiver.decoded["video"] >= 10)
        assert receiver.decoded["audio"] == 0
        assert await service.answer("r", await receiver.accept_offer(second.sdp)) is None
        await wait_for(lambda: receiver.decoded["audio"] >= 10)
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()
        await service.close()


def test_ice_servers_are_taken_as_urls_dicts_or_objects() -> None:
    from aiortc import RTCIceServer

    from media.sfu_types import ice_servers_from

    servers = ice_servers_from(
        [
            "stun:127.0.0.1:3478",
            {"urls": "turn:127.0.0.1:3478", "username": "u", "credential": "p"},
            RTCIceServer(urls="stun:10.0.0.1"),
            "turn:user:pa:ss@turn.example.cn:3478?transport=udp",
        ]
    )
    assert servers[3].urls == "turn:turn.example.cn:3478?transport=udp"
    assert (servers[3].username, servers[3].credential) == ("user", "pa:ss")
    for bad in ("stun.example.cn", "stun:"):
        with pytest.raises(MediaError) as info:
            ice_servers_from([bad])
        assert info.value.code == "bad_ice_server"
    assert [s.urls for s in servers[:3]] == [
        "stun:127.0.0.1:3478",
        "turn:127.0.0.1:3478",
        "stun:10.0.0.1",
    ]
    assert (servers[1].username, servers[1].credential) == ("u", "p")


async def test_the_loudest_classroom_becomes_the_active_speaker_without_decoding(
    clip_cache,
) -> None:
    from media.sfu import TrackSpec as Spec
    from media.synthetic.peers import SyntheticPublisher

    speakers: list[tuple[str, str | None]] = []

    class Listener(Events):
        def active_speaker(self, lesson_id, peer_id) -> None:  # type: ignore[no-untyped-def]
            speakers.append((lesson_id, peer_id))

    service = MediaService(host_addresses=LOOPBACK, listener=Listener())
    lead, _ = await publish(service, "L5", "lead", clip_cache)
    lead.audio_track.speaking = False  # type: ignore[union-attr]
    room = SyntheticPublisher(host_addresses=LOOPBACK, layers=(), cache_dir=clip_cache)
    try:
        offer = await room.create_offer()
        result = await service.publish(
            "L5", "room-1", offer, [Spec(t.mid, t.source, t.layer) for t in room.tracks]
        )
        await room.accept_answer(result.sdp)
        await wait_for(lambda: ("L5", "room-1") in speakers, within=10)
        room.audio_track.speaking = False  # type: ignore[union-attr]
        lead.audio_track.speaking = True  # type: ignore[union-attr]
        await wait_for(lambda: speakers[-1] == ("L5", "lead"), within=10)
        # The level extension is forwarded to subscribers, rewritten to their extension id.
        receiver = await subscribe(service, "L5", "r", [result.producers[0].id])
        await wait_for(lambda: receiver.decoded["audio"] >= 10)
        consumer = service.consumer("r", result.producers[0].id)
        assert consumer.params.extension_id("urn:ietf:params:rtp-hdrext:ssrc-audio-level")
        await receiver.close()
    finally:
        await room.close()
        await lead.close()
        await service.close()


async def test_unpublishing_a_track_asks_its_subscribers_to_renegotiate(clip_cache) -> None:
    asked: list[str] = []

    class Listener(Events):
        def renegotiation_needed(self, peer_id) -> None:  # type: ignore[no-untyped-def]
            asked.append(peer_id)

    service = MediaService(host_addresses=LOOPBACK, listener=Listener())
    lead, (video, audio) = await publish(service, "L6", "lead", clip_cache)
    receiver = await subscribe(service, "L6", "r", [video.id, audio.id])
    try:
        await wait_for(lambda: receiver.decoded["audio"] >= 5)
        await service.unpublish("lead", audio.id)
        assert asked == ["r"] and [p.id for p in service.producers("L6")] == [video.id]
        result = await service.resync("r")
        assert result is not None and [c.kind for c in result.consumers] == ["video"]
        await service.answer("r", await receiver.accept_offer(result.sdp))
        count = receiver.decoded["video"]
        await wait_for(lambda: receiver.decoded["video"] >= count + 10)
        with pytest.raises(MediaError) as info:
            await service.unpublish("lead", audio.id)
        assert info.value.code == "unknown_producer"
    finally:
        await receiver.close()
        await lead.close()
        await service.close()

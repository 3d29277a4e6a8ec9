"""SfuMediaPort: the room's media calls reach the real SFU and its events reach the room."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from media.sfu import MediaService
from media.synthetic import clip
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from signaling.errors import ErrorCode
from signaling.grants import Role, Source
from signaling.media_port import MediaError, PeerInfo, QualityReport, SubscriptionOffer, TrackOffer
from signaling.policy import Layer, ProducerRef, PublishedTrack
from signaling.sfu_port import SfuMediaPort

LOOPBACK = ["127.0.0.1"]
LEAD = PeerInfo("L1", "lead-peer", Role.LEAD, "room-lead")
RECEIVER = PeerInfo("L1", "r1-peer", Role.RECEIVER, "room-1")


class RoomSide:
    """What the RoomManager would receive from the port."""

    def __init__(self) -> None:
        self.tracks: dict[str, tuple[PublishedTrack, ...]] = {}
        self.offers: list[tuple[str, SubscriptionOffer]] = []
        self.speakers: list[str | None] = []
        self.failures: list[tuple[str, str]] = []

    def producers_changed(
        self, lesson_id: str, peer_id: str, tracks: tuple[PublishedTrack, ...]
    ) -> None:
        self.tracks[peer_id] = tracks

    def quality_changed(self, lesson_id: str, peer_id: str, report: QualityReport) -> None:
        return None

    def active_speaker_changed(self, lesson_id: str, peer_id: str | None) -> None:
        self.speakers.append(peer_id)

    def subscription_offer(self, lesson_id: str, peer_id: str, offer: SubscriptionOffer) -> None:
        self.offers.append((peer_id, offer))

    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None:
        self.failures.append((peer_id, reason))


async def wait_for(predicate: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def port():  # type: ignore[no-untyped-def]
    service = MediaService(ice_servers=[], host_addresses=LOOPBACK)
    adapter = SfuMediaPort(service)
    yield adapter
    await adapter.close()
    await service.close()


async def test_a_published_lead_reaches_a_receiver_through_the_port(port: SfuMediaPort) -> None:
    cache = clip.default_cache_dir()
    room = RoomSide()
    port.set_listener(room)
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), cache_dir=cache)
    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    try:
        offer = await publisher.create_offer()
        tracks = [TrackOffer(t.mid, Source(t.source), Layer(t.layer)) for t in publisher.tracks]
        await publisher.accept_answer(await port.publish(LEAD, offer, tracks))
        # Announced to the room once the lead's transport is connected, never before.
        assert "lead-peer" not in room.tracks
        await wait_for(lambda: len(room.tracks.get("lead-peer", ())) == 2)
        assert {t.source for t in room.tracks["lead-peer"]} == {Source.CAMERA, Source.MIC}

        wanted = frozenset(
            {ProducerRef("lead-peer", Source.CAMERA), ProducerRef("lead-peer", Source.MIC)}
        )
        sub = await port.set_subscriptions(RECEIVER, wanted)
        assert sub is not None
        assert {c.producer for c in sub.consumers} == wanted
        assert all(c.producer.classroom_id == "room-lead" for c in sub.consumers)
        while sub is not None:
            sub = await port.subscribe_answer(RECEIVER, await receiver.accept_offer(sub.sdp))
        await wait_for(lambda: receiver.decoded["video"] >= 10 and receiver.decoded["audio"] >= 10)
        assert receiver.decode_errors == 0
        # The lead's tone carries a loud ssrc-audio-level: the SFU names it the speaker.
        await wait_for(lambda: "lead-peer" in room.speakers)
    finally:
        await receiver.close()
        await publisher.close()


async def test_garbage_sdp_is_refused_with_invalid_sdp(port: SfuMediaPort) -> None:
    port.set_listener(RoomSide())
    with pytest.raises(MediaError) as info:
        await port.publish(
            LEAD, "v=0 this is not sdp", [TrackOffer("0", Source.CAMERA, Layer.MAIN)]
        )
    assert info.value.code is ErrorCode.INVALID_SDP
    assert port.service.producers("L1") == []


async def test_an_answer_without_an_offer_is_refused_with_invalid_sdp(port: SfuMediaPort) -> None:
    port.set_listener(RoomSide())
    with pytest.raises(MediaError) as info:
        await port.subscribe_answer(RECEIVER, "v=0")
    assert info.value.code is ErrorCode.INVALID_SDP


async def test_a_publish_whose_transport_fails_reaches_the_room_and_no_track_does(
    port: SfuMediaPort,
) -> None:
    room = RoomSide()
    port.set_listener(room)
    publisher = SyntheticPublisher(
        host_addresses=LOOPBACK, layers=("main",), cache_dir=clip.default_cache_dir()
    )
    try:
        offer = await publisher.create_offer()
        # Another certificate than the one the offer names: DTLS fails after the answer.
        lines = offer.split("\r\n")
        offer = "\r\n".join(
            "a=fingerprint:sha-256 " + ":".join(["CD"] * 32)
            if line.startswith("a=fingerprint:sha-256")
            else line
            for line in lines
        )
        tracks = [TrackOffer(t.mid, Source(t.source), Layer(t.layer)) for t in publisher.tracks]
        await publisher.accept_answer(await port.publish(LEAD, offer, tracks))
        await wait_for(lambda: room.failures != [])
        assert room.failures[0][0] == "lead-peer" and "fingerprint" in room.failures[0][1]
        assert "lead-peer" not in room.tracks
    finally:
        await publisher.close()

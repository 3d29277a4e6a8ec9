"""Malformed SDP never fails the server (issue 17, finding 3).

A publisher's offer and a subscriber's answer are mutated (numbers out of range, lines cut,
repeated or swapped, garbage bytes) and sent to the real SFU through SfuMediaPort, the path
`publish` and `subscribe_answer` take. Every outcome is an answer or a MediaError with a
stable code other than `internal_error` (aiortc's parser raises AssertionError and others
on some inputs; each must become `invalid_sdp`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.sfu import MediaService
from media.synthetic import clip
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from signaling.errors import ErrorCode
from signaling.grants import Role, Source
from signaling.media_port import MediaError, PeerInfo, SubscriptionOffer, TrackOffer
from signaling.policy import Layer, ProducerRef, PublishedTrack
from signaling.sfu_port import SfuMediaPort

LOOPBACK = ["127.0.0.1"]
LEAD = PeerInfo("L1", "lead-peer", Role.LEAD, "room-lead")
TRACKS = [TrackOffer("0", Source.CAMERA, Layer.MAIN), TrackOffer("1", Source.MIC, Layer.MAIN)]
# Values that broke aiortc's parser or are at the edge of a field's range.
NASTY = ["-5", "-1", "0", "256", "65536", "4294967296", "99999999999999999999", "", "x", "1e3",
         "\x00", "\udcff", "96/", "/", ":", " ", "VP8/-1", "opus/48000/-2"]  # fmt: skip
EXTRA_LINES = [
    "m=video -5 UDP/TLS/RTP/SAVPF 96",
    "m=audio 9 UDP/TLS/RTP/SAVPF 300",
    "a=rtpmap:300 VP8/90000",
    "a=rtpmap:96",
    "a=fmtp:96 apt=",
    "a=ssrc-group:FID 1",
    "a=ssrc:x cname:y",
    "a=mid:",
    "a=rtcp-fb:96",
    "a=extmap:99999 urn:x",
    "a=candidate:1 1 udp -1 127.0.0.1 -5 typ host",
    "c=IN IP4",
    "a=fingerprint:sha-256",
    "a=setup:bogus",
]


class Room:
    def producers_changed(
        self, lesson_id: str, peer_id: str, tracks: tuple[PublishedTrack, ...]
    ) -> None:
        return None

    def quality_changed(self, *args: object) -> None:
        return None

    def active_speaker_changed(self, *args: object) -> None:
        return None

    def subscription_offer(self, lesson_id: str, peer_id: str, offer: SubscriptionOffer) -> None:
        return None


@dataclass
class Rig:
    loop: asyncio.AbstractEventLoop
    port: SfuMediaPort
    offer: str  # a real publisher offer
    answer: str  # a real subscriber answer
    peers: Iterator[int]


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    loop = asyncio.new_event_loop()

    async def build() -> tuple[SfuMediaPort, str, str, list[object]]:
        port = SfuMediaPort(MediaService(ice_servers=[], host_addresses=LOOPBACK))
        port.set_listener(Room())
        publisher = SyntheticPublisher(
            host_addresses=LOOPBACK, layers=("main",), cache_dir=clip.default_cache_dir()
        )
        offer = await publisher.create_offer()
        await publisher.accept_answer(await port.publish(LEAD, offer, TRACKS))
        # Its producers are offered to subscribers once its transport is connected.
        for _ in range(300):
            if all(port.producer_for(ref) for ref in _wanted()):
                break
            await asyncio.sleep(0.05)
        receiver = SyntheticReceiver(host_addresses=LOOPBACK)
        sub = await port.set_subscriptions(_receiver(0), _wanted())
        assert sub is not None
        answer = await receiver.accept_offer(sub.sdp)
        return port, offer, answer, [publisher, receiver]

    port, offer, answer, peers = loop.run_until_complete(build())
    try:
        yield Rig(loop, port, offer, answer, itertools.count(1))
    finally:

        async def close() -> None:
            for peer in peers:
                await peer.close()  # type: ignore[attr-defined]
            await port.close()
            await port.service.close()
            # aiortc's connect tasks of refused offers wait on ICE that never comes.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        loop.run_until_complete(close())
        loop.close()


def _receiver(n: int) -> PeerInfo:
    return PeerInfo("L1", f"r{n}-peer", Role.RECEIVER, f"room-{n}")


def _wanted() -> frozenset[ProducerRef]:
    return frozenset(ProducerRef("lead-peer", source) for source in (Source.CAMERA, Source.MIC))


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    lines = base.replace("\r\n", "\n").split("\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["token", "drop", "repeat", "insert", "text"]))
        if action == "token":
            words = lines[at].replace(":", " ").split(" ")
            word = draw(st.sampled_from(words))
            if word:
                lines[at] = lines[at].replace(word, draw(st.sampled_from(NASTY)), 1)
        elif action == "drop":
            del lines[at]
        elif action == "repeat":
            lines.insert(at, lines[at])
        elif action == "insert":
            lines.insert(at, draw(st.sampled_from(EXTRA_LINES)))
        else:
            lines.insert(at, draw(st.text(max_size=40)))
        if not lines:
            lines = [""]
    return "\r\n".join(lines)


def _refused_cleanly(exc: MediaError) -> None:
    assert exc.code is not ErrorCode.INTERNAL_ERROR, exc.message
    assert exc.code in (ErrorCode.INVALID_SDP, ErrorCode.MEDIA_UNAVAILABLE), exc.code


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.data())
def test_publish_never_answers_internal_error(rig: Rig, data: st.DataObject) -> None:
    sdp = data.draw(mutated(rig.offer))
    peer = PeerInfo("L1", f"p{next(rig.peers)}", Role.RECEIVER, "room-p")

    async def attempt() -> None:
        try:
            await rig.port.publish(peer, sdp, TRACKS)
        except MediaError as exc:
            _refused_cleanly(exc)
        finally:
            await rig.port.close_peer(peer)

    rig.loop.run_until_complete(attempt())


@FUZZ
@given(data=st.data())
def test_subscribe_answer_never_answers_internal_error(rig: Rig, data: st.DataObject) -> None:
    sdp = data.draw(mutated(rig.answer))
    peer = _receiver(next(rig.peers))

    async def attempt() -> None:
        try:
            sub = await rig.port.set_subscriptions(peer, _wanted())
            assert sub is not None
            await rig.port.subscribe_answer(peer, sdp)
        except MediaError as exc:
            _refused_cleanly(exc)
        finally:
            await rig.port.close_peer(peer)

    rig.loop.run_until_complete(attempt())


def test_payload_type_past_255_and_a_negative_port_are_invalid_sdp(rig: Rig) -> None:
    """The probes that found it: aiortc's parser asserted on both."""
    video = next(line for line in rig.offer.split("\r\n") if line.startswith("m=video"))
    pt = video.split(" ")[3]
    big_pt = rig.offer.replace(video, video.replace(f" {pt}", " 300", 1)).replace(
        f"a=rtpmap:{pt} ", "a=rtpmap:300 "
    )
    negative_port = rig.offer.replace(video, video.replace(video.split(" ")[1], "-5", 1))
    for bad in (big_pt, negative_port):
        peer = PeerInfo("L1", f"p{next(rig.peers)}", Role.RECEIVER, "room-p")

        async def attempt(text: str = bad, who: PeerInfo = peer) -> ErrorCode:
            try:
                await rig.port.publish(who, text, TRACKS)
            except MediaError as exc:
                return exc.code
            finally:
                await rig.port.close_peer(who)
            raise AssertionError("the malformed offer was accepted")

        assert rig.loop.run_until_complete(attempt()) is ErrorCode.INVALID_SDP

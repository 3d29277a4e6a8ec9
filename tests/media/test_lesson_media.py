"""A whole lesson through the real service: signaling, policy and SFU, with aiortc peers.

The app runs in this process under uvicorn on a free loopback port, seeded with the demo
district (a lead, three receiving classrooms, a patrol link). SyntheticTerminals join like
browsers (join link -> WebSocket -> publish / subscribe_offer) and media goes over real
ICE/DTLS/SRTP on 127.0.0.1. One lesson serves every test of the module; each test sets the
stage and mute state it needs first, so the tests do not depend on each other's order.

What the lead receives follows signaling/policy.py: every receiver's camera (main while at
most four receivers publish video), a receiver's audio only while the lead hears it (on
stage and not muted, or explicitly unmuted).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from media import aiortc_hooks as hooks
from media.synthetic.peers import StreamCounters, SyntheticPublisher
from media.synthetic.terminal import SyntheticTerminal, TerminalError
from tongke_bench.loss import live_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOOPBACK = ["127.0.0.1"]
Message = dict[str, Any]


async def wait_until(
    condition: Callable[[], bool], within: float = 15.0, what: str | Callable[[], str] = ""
) -> None:
    """Wait for ``condition``; ``what`` (or a function giving it) says what failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"not met within {within}s: {said or condition}")
        await asyncio.sleep(0.05)


@dataclass
class Lesson:
    base_url: str
    codes: dict[str, list[str]]
    lead: SyntheticTerminal
    receivers: list[SyntheticTerminal]

    def classroom(self, terminal: SyntheticTerminal) -> str:
        return str(terminal.joined["you"]["classroom_id"])

    @property
    def everyone(self) -> list[SyntheticTerminal]:
        return [self.lead, *self.receivers]

    async def stage(self, terminal: SyntheticTerminal | None) -> None:
        """Put ``terminal``'s classroom on stage (None: nobody), with the lead's default audio."""
        target = None if terminal is None else self.classroom(terminal)
        await self.lead.request({"type": "set_stage", "classroom_id": target})
        for receiver in self.receivers:  # back to the default: on stage = heard
            heard = receiver is terminal
            await self.lead.request(
                {"type": "mute", "classroom_id": self.classroom(receiver), "muted": not heard}
            )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lesson(
    tmp_path_factory: pytest.TempPathFactory, clip_cache: Path
) -> AsyncIterator[Lesson]:
    # The bench's in-process service with the demo lesson, without fault injection.
    try:
        async with live_service(tmp_path_factory.mktemp("lesson-media"), faults=False) as live:
            codes = live.codes
            assert len(codes["receiver"]) == 3 and codes["lead"] and codes["patrol"]
            # The lead counts frames without decoding (three grid streams); receivers decode
            # what they get, to prove the forwarded media is valid.
            lead = live.terminal("lead")
            receivers = [
                live.terminal("receiver", n, decode=True) for n in range(len(codes["receiver"]))
            ]
            await lead.start(start_lesson=True)
            for receiver in receivers:
                await receiver.start()
            yield Lesson(live.base_url, codes, lead, receivers)
    finally:
        # Whatever is still running now outlives the lesson; the module's event loop cancels
        # it at close, and a task that ignores that would hang the run after the last test
        # (outside pytest-timeout). Name such tasks so a hang can be traced.
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        if left:
            _, stuck = await asyncio.wait(left, timeout=10)
            if stuck:
                logging.getLogger(__name__).warning("tasks ignore cancellation: %s", stuck)


# -- what a terminal receives, by producer ------------------------------------------------


def consumers(terminal: SyntheticTerminal) -> list[Message]:
    """The consumers of the terminal's latest subscription offer (its current set)."""
    offers = terminal.of_type("subscribe_offer")
    return list(offers[-1]["consumers"]) if offers else []


def stream_of(terminal: SyntheticTerminal, classroom_id: str, kind: str) -> StreamCounters | None:
    """What arrived for the consumer of ``classroom_id``'s ``kind`` (by its SSRC in the offer)."""
    offers = terminal.of_type("subscribe_offer")
    if not offers or terminal.receiver is None:
        return None
    offer = offers[-1]
    mids = [
        c["mid"]
        for c in offer["consumers"]
        if c["producer"]["classroom_id"] == classroom_id and c["producer"]["kind"] == kind
    ]
    if not mids:
        return None
    for media in hooks.parse_sdp(offer["sdp"]).media:
        if str(media.rtp.muxId) == mids[0]:
            primary, _ = hooks.media_ssrcs(media)
            return terminal.receiver.streams.get(primary[0]) if primary else None
    return None


def frames_of(terminal: SyntheticTerminal, classroom_id: str, kind: str = "video") -> int:
    stream = stream_of(terminal, classroom_id, kind)
    return 0 if stream is None else stream.frames


def packets_of(terminal: SyntheticTerminal, classroom_id: str, kind: str = "audio") -> int:
    stream = stream_of(terminal, classroom_id, kind)
    return 0 if stream is None else stream.packets


def wanted(terminal: SyntheticTerminal) -> set[tuple[str | None, str, str]]:
    """The terminal's latest producers_changed (the policy's answer) as (classroom, src, layer)."""
    changes = terminal.of_type("producers_changed")
    producers = changes[-1]["producers"] if changes else []
    return {(p["classroom_id"], p["source"], p["layer"]) for p in producers}


def described(terminal: SyntheticTerminal) -> str:
    """What a terminal received, for an assertion message (decode errors are rare events)."""
    receiver = terminal.receiver
    if receiver is None:
        return "no receiver"
    streams = [
        f"{s.kind}: first key={s.first_frame_keyframe} frames={s.frames} keys={s.keyframes} "
        f"lost={s.lost} rtx={s.retransmissions}"
        for s in receiver.streams.values()
    ]
    return (
        f"pc {receiver.pc.connectionState}/{receiver.pc.iceConnectionState}, "
        f"decode errors {receiver.decode_errors}, sizes {receiver.video_sizes}, "
        f"{len(terminal.of_type('subscribe_offer'))} offers; " + "; ".join(streams)
    )


def speak(lesson: Lesson, *speaking: SyntheticTerminal) -> None:
    """Only ``speaking`` stamp a loud audio level (-20 dBov); the others stamp silence."""
    for terminal in lesson.everyone:
        assert terminal.publisher is not None and terminal.publisher.audio_track is not None
        terminal.publisher.audio_track.speaking = terminal in speaking


async def wait_speaker(
    lesson: Lesson, listener: SyntheticTerminal, speaker: SyntheticTerminal | None
) -> None:
    """The latest ``active_speaker`` ``listener`` got names ``speaker`` (None: silence)."""
    peer = None if speaker is None else speaker.joined["peer_id"]
    room = None if speaker is None else lesson.classroom(speaker)

    def current() -> bool:
        said = listener.of_type("active_speaker")
        return bool(said) and (said[-1]["peer_id"], said[-1]["classroom_id"]) == (peer, room)

    await wait_until(current, 15, f"active speaker {room}: {listener.of_type('active_speaker')}")


async def wait_growing(
    count: Callable[[], int], what: str | Callable[[], str], within: float = 15.0
) -> None:
    """``count`` grows (media keeps flowing), measured twice at least 0.3 s apart."""
    await wait_until(lambda: count() > 0, within, what)
    before = count()
    await asyncio.sleep(0.3)
    await wait_until(lambda: count() > before, within, what)


async def wait_stopped(count: Callable[[], int], what: str, within: float = 10.0) -> None:
    """``count`` stops growing (no packet in 1 s) within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        before = count()
        await asyncio.sleep(1.0)
        if count() == before:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} still grows after {within}s")


# -- the tests ------------------------------------------------------------------------------


async def test_each_receiver_gets_and_decodes_the_leads_video_and_audio(lesson: Lesson) -> None:
    await lesson.stage(None)
    lead_room = lesson.classroom(lesson.lead)
    for receiver in lesson.receivers:
        assert wanted(receiver) >= {(lead_room, "camera", "main"), (lead_room, "mic", "main")}
    await wait_until(
        lambda: all(
            frames_of(r, lead_room) >= 30 and packets_of(r, lead_room) >= 30
            for r in lesson.receivers
        ),
        what="every receiver gets the lead's video and audio",
    )
    await wait_until(
        lambda: all(r.receiver.decoded["video"] >= 30 for r in lesson.receivers if r.receiver),
        what="every receiver decodes the lead's video",
    )
    for receiver in lesson.receivers:
        assert receiver.receiver is not None
        video = stream_of(receiver, lead_room, "video")
        assert video is not None and video.first_frame_keyframe is True
        assert receiver.receiver.decoded["audio"] > 0
        assert receiver.receiver.decode_errors == 0, described(receiver)
        assert (640, 480) in receiver.receiver.video_sizes


async def test_the_lead_gets_each_receivers_video_as_the_policy_says(lesson: Lesson) -> None:
    await lesson.stage(None)
    rooms = [lesson.classroom(r) for r in lesson.receivers]
    # Three receivers publish video (at most four): the grid is on main. Nobody is on stage
    # and nobody unmuted, so the lead hears no classroom.
    await wait_until(
        lambda: wanted(lesson.lead) == {(c, "camera", "main") for c in rooms},
        what="the lead's policy set",
    )
    await wait_until(
        lambda: all(frames_of(lesson.lead, c) >= 30 for c in rooms),
        what="the lead gets every receiver's video",
    )
    for room in rooms:
        video = stream_of(lesson.lead, room, "video")
        assert video is not None and video.first_frame_keyframe is True
        (consumer,) = [
            c
            for c in consumers(lesson.lead)
            if c["producer"]["classroom_id"] == room and c["producer"]["kind"] == "video"
        ]
        assert consumer["producer"]["layer"] == "main"
    assert not [c for c in consumers(lesson.lead) if c["producer"]["kind"] == "audio"]


async def test_stage_switching_moves_the_classrooms_tracks_to_everyone(lesson: Lesson) -> None:
    first, second, third = lesson.receivers
    for on_stage, others in ((first, (second, third)), (second, (first, third))):
        room = lesson.classroom(on_stage)
        await lesson.stage(on_stage)
        for other in others:
            await wait_until(
                lambda other=other, room=room: (
                    {(room, "camera", "main"), (room, "mic", "main")} <= wanted(other)
                ),
                what=f"{room} in a receiver's policy set",
            )
            await wait_until(
                lambda other=other, room=room: (
                    frames_of(other, room) >= 15 and packets_of(other, room) > 0
                ),
                what=f"a receiver gets the on-stage {room}",
            )
            video = stream_of(other, room, "video")
            assert video is not None and video.first_frame_keyframe is True
        # The lead hears the on-stage classroom; the classroom does not receive itself.
        await wait_growing(
            lambda room=room: packets_of(lesson.lead, room), f"{room}'s audio at the lead"
        )
        assert not [c for c in consumers(on_stage) if c["producer"]["classroom_id"] == room]
    # The stage left the first classroom: its tracks went from everyone (but the lead's grid).
    gone = lesson.classroom(first)
    assert (gone, "camera", "main") not in wanted(third)
    assert (gone, "mic", "main") not in wanted(lesson.lead)
    for receiver in lesson.receivers:
        assert receiver.receiver is not None
        assert receiver.receiver.decode_errors == 0, described(receiver)


async def test_muting_stops_the_classrooms_audio_to_the_lead(lesson: Lesson) -> None:
    receiver = lesson.receivers[2]
    room = lesson.classroom(receiver)
    await lesson.stage(receiver)
    await wait_growing(lambda: packets_of(lesson.lead, room), f"{room}'s audio at the lead")
    stream = stream_of(lesson.lead, room, "audio")  # by the SSRC it comes on (kept after)
    assert stream is not None

    await lesson.lead.request({"type": "mute", "classroom_id": room, "muted": True})
    await lesson.lead.wait_for(
        "muted_changed", lambda m: m["classroom_id"] == room and m["muted"] is True
    )
    await wait_until(lambda: (room, "mic", "main") not in wanted(lesson.lead), what="policy")
    await wait_stopped(lambda: stream.packets, f"{room}'s audio at the lead")
    # Its video stays on the lead's grid (muting is about sound only).
    await wait_growing(lambda: frames_of(lesson.lead, room), f"{room}'s video at the lead")

    await lesson.lead.request({"type": "mute", "classroom_id": room, "muted": False})
    await wait_growing(
        lambda: packets_of(lesson.lead, room),
        lambda: f"{room}'s audio again: {consumers(lesson.lead)} {described(lesson.lead)}",
    )


async def test_the_speaking_classroom_becomes_the_active_speaker_for_the_lead(
    lesson: Lesson,
) -> None:
    await lesson.stage(None)

    second, third = lesson.receivers[1], lesson.receivers[2]
    try:
        speak(lesson, second)  # not on stage, not heard by the lead: still marked as talking
        await wait_speaker(lesson, lesson.lead, second)
        speak(lesson, third)
        await wait_speaker(lesson, lesson.lead, third)
        speak(lesson)
        await wait_speaker(lesson, lesson.lead, None)
    finally:
        speak(lesson, *lesson.everyone)
    for receiver in lesson.receivers:
        assert not receiver.of_type("active_speaker")  # receivers are never told


async def test_a_late_patrol_starts_on_a_keyframe_hears_the_speaker_and_cannot_publish(
    lesson: Lesson, clip_cache: Path
) -> None:
    speaker = lesson.receivers[0]
    speak(lesson, speaker)
    await wait_speaker(lesson, lesson.lead, speaker)

    # Raw receiving (no decoding): the first frame counted is the first frame sent.
    patrol = SyntheticTerminal(lesson.base_url, lesson.codes["patrol"][0], host_addresses=LOOPBACK)
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), cache_dir=clip_cache)
    lead_room = lesson.classroom(lesson.lead)
    try:
        await patrol.start()
        assert patrol.joined["you"]["publish"] == []
        # Joining mid-sentence: told who speaks right after joined.
        told = await patrol.wait_for("active_speaker")
        assert told["classroom_id"] == lesson.classroom(speaker), patrol.of_type("active_speaker")
        # The default patrol view: the lead's camera on the low layer and its mic.
        assert wanted(patrol) == {(lead_room, "camera", "low"), (lead_room, "mic", "main")}
        await wait_until(
            lambda: frames_of(patrol, lead_room) >= 15,
            what=lambda: f"patrol video: {described(patrol)} {consumers(patrol)}",
        )
        video = stream_of(patrol, lead_room, "video")
        assert video is not None and video.first_frame_keyframe is True
        # The offer names the layer asked for, as producers_changed did.
        layers = {(c["producer"]["source"], c["producer"]["layer"]) for c in consumers(patrol)}
        assert layers == {("camera", "low"), ("mic", "main")}
        await wait_growing(
            lambda: packets_of(patrol, lead_room),
            lambda: f"patrol audio: {described(patrol)} {consumers(patrol)}",
        )

        offer = await publisher.create_offer()
        tracks = [{"mid": t.mid, "source": t.source, "layer": t.layer} for t in publisher.tracks]
        with pytest.raises(TerminalError) as refused:
            await patrol.request({"type": "publish", "sdp": offer, "tracks": tracks})
        assert refused.value.code == "forbidden"
        assert not [m for m in patrol.of_type("publish_answer")]
    finally:
        speak(lesson, *lesson.everyone)
        await publisher.close()
        await patrol.close()


async def test_metrics_show_the_media_plane_and_each_peers_quality(lesson: Lesson) -> None:
    """/metrics carries what the SFU holds and every peer's quality sample (the figures the
    lead's `quality` events carry), labelled with lesson, classroom and role."""

    async def scrape() -> str:
        async with httpx.AsyncClient(base_url=lesson.base_url) as http:
            return (await http.get("/metrics")).text

    def value(text: str, name: str, **labels: str) -> float | None:
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    lead_peer = lesson.lead.joined["peer_id"]
    first = lesson.receivers[0]
    classroom = lesson.classroom(first)
    text = ""

    def bitrate(peer: str, direction: str) -> float:
        found = value(text, "tongke_peer_bitrate_bits_per_second", peer=peer, direction=direction)
        return found or 0.0

    # A quality sample every 2 s per peer; a peer's first one has no bitrate yet (no interval).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        text = await scrape()
        if bitrate(lead_peer, "up") and bitrate(first.joined["peer_id"], "down"):
            break
        await asyncio.sleep(0.5)
    assert value(text, "tongke_media_peers") == len(lesson.everyone)
    assert (value(text, "tongke_media_producers") or 0) >= 3  # the lead's camera x2 and mic
    assert (value(text, "tongke_media_consumers") or 0) >= 3 * len(lesson.receivers)
    assert value(text, "tongke_media_packets_unusable_total", reason="unprotect_errors") == 0
    # The lead sends (up) ~1 Mbit/s; the receiver gets the lead's camera and mic (down).
    lead_up = value(text, "tongke_peer_bitrate_bits_per_second", peer=lead_peer, direction="up")
    assert lead_up is not None and lead_up > 300_000, lead_up
    got = value(
        text,
        "tongke_peer_bitrate_bits_per_second",
        peer=first.joined["peer_id"],
        classroom=classroom,
        role="receiver",
        direction="down",
    )
    assert got is not None and got > 0, got  # the layer it gets depends on earlier tests
    loss = value(text, "tongke_peer_loss_ratio", peer=first.joined["peer_id"], direction="down")
    assert loss is not None and 0 <= loss < 0.05
    assert value(text, "tongke_peer_quality_level", peer=lead_peer, role="lead") == 2  # good

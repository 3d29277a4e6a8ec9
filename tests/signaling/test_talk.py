"""Talkback: an inspector talks to one classroom; only that classroom sees and hears it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signal_harness import LEAD_ROOM, Client, RecordingMedia, Signal

from signaling.grants import Role

MIC = [{"mid": "0", "source": "mic"}]
TRACKS = [{"mid": "0", "source": "camera"}, {"mid": "1", "source": "mic"}]


def patrol_mics(media: RecordingMedia, peer_id: str, patrol_id: str) -> set[str]:
    return {r.source.value for r in media.subscriptions.get(peer_id, ()) if r.peer_id == patrol_id}


@dataclass
class Scene:
    signal: Signal
    media: RecordingMedia
    lead: Client
    r1: Client
    r2: Client
    patrol: Client


async def live_lesson(make_signal: Callable[..., Signal]) -> Scene:
    """A live lesson with the lead, r1, r2 and one patrol."""
    media = RecordingMedia()
    signal = make_signal(media=media)
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    r2 = await signal.receiver("r2")
    return Scene(signal, media, lead, r1, r2, await signal.patrol())


def talk_messages(client: Client) -> list[dict[str, Any]]:
    return [m for m in client.pending() if m["type"].startswith("talk_")]


async def test_the_addressed_classroom_alone_sees_and_hears_the_inspector(
    make_signal: Callable[..., Signal],
) -> None:
    scene = await live_lesson(make_signal)
    signal = scene.signal
    media = scene.media
    lead = scene.lead
    r1 = scene.r1
    r2 = scene.r2
    patrol = scene.patrol
    patrol_id = patrol.joined["peer_id"]
    assert (await patrol.request("talk_start", classroom_id="r1"))["type"] == "ok"
    started = await r1.expect("talk_started")
    assert started["peer_id"] == patrol_id and started["classroom_id"] == "r1"
    assert started["name"] == patrol.joined["you"]["name"]
    assert (await patrol.expect("talk_started"))["talk_id"] == started["talk_id"]
    assert (await patrol.request("publish", sdp="v=0", tracks=MIC))["type"] == "publish_answer"
    for client in (lead, r1, r2):
        await client.settle()
    assert patrol_mics(media, r1.joined["peer_id"], patrol_id) == {"mic"}
    assert patrol_mics(media, r2.joined["peer_id"], patrol_id) == set()
    assert patrol_mics(media, lead.joined["peer_id"], patrol_id) == set()
    assert talk_messages(lead) == [] and talk_messages(r2) == []
    # Still no participant anywhere.
    for client in (lead, r2):
        assert not any(m.get("participant", {}).get("role") == "patrol" for m in client.pending())

    assert (await patrol.request("talk_stop"))["type"] == "ok"
    stopped = await r1.expect("talk_stopped")
    assert stopped["reason"] == "released" and stopped["duration_s"] >= 0
    await r1.settle()
    assert patrol_mics(media, r1.joined["peer_id"], patrol_id) == set()
    (talk, duration) = signal.hooks.talks[started["talk_id"]]
    assert talk.classroom_id == "r1" and talk.classroom_name == "教学点 r1"
    assert duration == stopped["duration_s"] and talk.offset_s is not None


async def test_talking_to_the_lead_reaches_the_lead_classroom(
    make_signal: Callable[..., Signal],
) -> None:
    scene = await live_lesson(make_signal)
    media = scene.media
    lead = scene.lead
    r1 = scene.r1
    r2 = scene.r2
    patrol = scene.patrol
    await patrol.request("talk_start", classroom_id=None)
    started = await lead.expect("talk_started")
    assert started["classroom_id"] == LEAD_ROOM
    await patrol.request("publish", sdp="v=0", tracks=MIC)
    await lead.settle()
    assert patrol_mics(media, lead.joined["peer_id"], patrol.joined["peer_id"]) == {"mic"}
    assert talk_messages(r1) == [] and talk_messages(r2) == []


async def test_talking_to_another_classroom_moves_the_talk(
    make_signal: Callable[..., Signal],
) -> None:
    scene = await live_lesson(make_signal)
    media = scene.media
    r1 = scene.r1
    r2 = scene.r2
    patrol = scene.patrol
    await patrol.request("talk_start", classroom_id="r1")
    await patrol.request("publish", sdp="v=0", tracks=MIC)
    await r1.expect("talk_started")
    assert (await patrol.request("talk_start", classroom_id="r2"))["type"] == "ok"
    assert (await r1.expect("talk_stopped"))["reason"] == "switched"
    await r2.expect("talk_started")
    await r1.settle()
    await r2.settle()
    patrol_id = patrol.joined["peer_id"]
    assert patrol_mics(media, r1.joined["peer_id"], patrol_id) == set()
    assert patrol_mics(media, r2.joined["peer_id"], patrol_id) == {"mic"}


async def test_one_classroom_hears_one_inspector_at_a_time(signal: Signal) -> None:
    await signal.live()
    await signal.receiver("r1")
    first = await signal.patrol()
    second = await signal.patrol()
    assert (await first.request("talk_start", classroom_id="r1"))["type"] == "ok"
    assert (await second.request("talk_start", classroom_id="r1"))["code"] == "talk_busy"
    assert (await second.request("talk_start", classroom_id=None))["type"] == "ok"


async def test_a_talk_needs_a_live_lesson_and_a_connected_classroom(signal: Signal) -> None:
    lead = await signal.lead()
    patrol = await signal.patrol()
    assert (await patrol.request("talk_start", classroom_id=None))["code"] == "lesson_not_live"
    await lead.request("start_lesson")
    # r3 is on the roster but not here; x is not in the lesson.
    assert (await patrol.request("talk_start", classroom_id="r3"))["code"] == "invalid_target"
    assert (await patrol.request("talk_start", classroom_id="x"))["code"] == "invalid_target"
    # Releasing without talking is harmless.
    assert (await patrol.request("talk_stop"))["type"] == "ok"
    assert talk_messages(patrol) == []


async def test_the_talk_ends_when_the_classroom_or_the_patrol_goes(
    make_signal: Callable[..., Signal],
) -> None:
    scene = await live_lesson(make_signal)
    signal = scene.signal
    r1 = scene.r1
    r2 = scene.r2
    patrol = scene.patrol
    await patrol.request("talk_start", classroom_id="r1")
    r1.drop()
    assert (await patrol.expect("talk_stopped"))["reason"] == "classroom_left"
    await patrol.request("talk_start", classroom_id="r2")
    await r2.expect("talk_started")
    patrol.drop()
    assert (await r2.expect("talk_stopped"))["reason"] == "patrol_left"
    await r2.settle()
    ended = [d for _, d in signal.hooks.talks.values()]
    assert len(ended) == 2 and None not in ended


async def test_the_lesson_end_closes_the_talk_record(make_signal: Callable[..., Signal]) -> None:
    scene = await live_lesson(make_signal)
    signal = scene.signal
    lead = scene.lead
    r2 = scene.r2
    patrol = scene.patrol
    await patrol.request("talk_start", classroom_id="r2")
    await lead.request("end_lesson")
    await r2.expect("lesson_ended")
    await r2.wait_closed()
    for _ in range(3):
        await lead.wait_closed()
    [(talk, duration)] = signal.hooks.talks.values()
    assert talk.classroom_id == "r2" and duration is not None


async def test_a_patrol_reading_grant_names_the_talk_control(signal: Signal) -> None:
    await signal.live()
    patrol = await signal.join(Role.PATROL)
    assert "talk" in patrol.joined["you"]["controls"]


async def test_a_classroom_resumed_mid_talk_is_told_again(signal: Signal) -> None:
    await signal.live()
    r1 = await signal.receiver("r1")
    patrol = await signal.patrol()
    await patrol.request("talk_start", classroom_id="r1")
    await r1.expect("talk_started")
    again = signal.connect()
    reply = await again.request("resume", version=1, resume_token=r1.joined["resume_token"])
    assert reply["type"] == "joined" and reply["resumed"]
    assert (await again.expect("talk_started"))["peer_id"] == patrol.joined["peer_id"]

"""The authorization matrix: every role x every client message, allowed or the exact error.

Run against a live lesson with the lead and receivers r1 and r2 present. The actor is the
lead itself, receiver r1, a patrol or a recorder. Without a media plane (NullMediaPort) an
allowed media message is answered media_unavailable; with one it succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from signal_harness import Client, RecordingMedia, Signal

from signaling.grants import Role

MESSAGES: dict[str, dict[str, Any]] = {
    "ping": {},
    "join": {"version": 1, "token": "anything"},
    "resume": {"version": 1, "resume_token": "anything"},
    "start_lesson": {},
    "set_stage": {"classroom_id": "r2"},
    "raise_hand": {},
    "lower_hand": {},
    "mute": {"classroom_id": "r2", "muted": False},
    "set_recording": {"on": True},
    "add_note": {"text": "导入环节自然"},
    "set_media_state": {"mic_on": False, "camera_on": True},
    "publish": {"sdp": "v=0", "tracks": [{"mid": "0", "source": "camera"}]},
    "subscribe_answer": {"sdp": "v=0"},
    "set_subscriptions": {"wants": [{"source": "camera"}]},
    "talk_start": {"classroom_id": None},
    "talk_stop": {},
    "leave": {},
    "end_lesson": {},
}

ROLES = (Role.LEAD, Role.RECEIVER, Role.PATROL, Role.RECORDER)
F = "forbidden"
M = "media_unavailable"

# What each role gets back: "ok", "pong", or an error code.
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    #                     lead       receiver   patrol     recorder
    "ping": ("pong", "pong", "pong", "pong"),
    "join": ("already_joined",) * 4,
    "resume": ("already_joined",) * 4,
    "start_lesson": ("ok", F, F, F),
    "set_stage": ("ok", F, F, F),
    "raise_hand": (F, "ok", F, F),
    "lower_hand": (F, "ok", F, F),
    "mute": ("ok", F, F, F),
    "set_recording": ("ok", F, F, F),
    "add_note": ("ok", F, "ok", F),
    "set_media_state": ("ok", "ok", F, F),
    "publish": (M, M, F, F),
    "subscribe_answer": (M, M, M, M),
    # The lead chooses its grid page: receiving classrooms' video only (this asks its own).
    "set_subscriptions": ("invalid_target", F, M, F),
    "talk_start": (F, F, "ok", F),
    "talk_stop": (F, F, "ok", F),
    "leave": ("ok", "ok", "ok", "ok"),
    "end_lesson": ("ok", F, F, F),
}

# With a media plane, an allowed media message gets its real answer (nothing is published
# yet, so set_subscriptions changes nothing on the wire: ok rather than subscribe_offer).
WITH_MEDIA = {"publish": "publish_answer", "subscribe_answer": "ok", "set_subscriptions": "ok"}


def outcome(reply: dict[str, Any]) -> str:
    if reply["type"] == "error":
        return str(reply["code"])
    if reply["type"] == "subscribe_offer":
        return "offer"
    return str(reply["type"])


async def actor_in_live_lesson(signal: Signal, role: Role) -> Client:
    lead = await signal.live()
    await signal.receiver("r2")
    if role is Role.LEAD:
        return lead
    if role is Role.RECEIVER:
        return await signal.receiver("r1")
    return await signal.join(role)


@pytest.mark.parametrize("message", list(MESSAGES))
@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_every_role_gets_the_expected_answer_to_every_message(
    make_signal: Callable[..., Signal], role: Role, message: str
) -> None:
    signal = make_signal()
    actor = await actor_in_live_lesson(signal, role)
    reply = await actor.request(message, **MESSAGES[message])
    assert outcome(reply) == EXPECTED[message][ROLES.index(role)]


@pytest.mark.parametrize("message", list(WITH_MEDIA))
@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_allowed_media_messages_reach_the_media_plane_and_refused_ones_do_not(
    make_signal: Callable[..., Signal], role: Role, message: str
) -> None:
    media = RecordingMedia()
    signal = make_signal(media=media)
    actor = await actor_in_live_lesson(signal, role)
    reply = await actor.request(message, **MESSAGES[message])
    expected = EXPECTED[message][ROLES.index(role)]
    assert outcome(reply) == (WITH_MEDIA[message] if expected == M else expected)


async def test_a_receiver_may_not_publish_a_source_its_grant_lacks(signal: Signal) -> None:
    await signal.live()
    r1 = await signal.receiver("r1")
    tracks = [{"mid": "0", "source": "camera"}, {"mid": "1", "source": "screen"}]
    reply = await r1.request("publish", sdp="v=0", tracks=tracks)
    assert reply["code"] == "forbidden" and "screen" in reply["message"]


async def test_a_patrol_may_not_ask_for_a_classroom_outside_the_lesson(signal: Signal) -> None:
    await signal.live()
    patrol = await signal.patrol()
    reply = await patrol.request(
        "set_subscriptions", wants=[{"source": "camera", "classroom_id": "x"}]
    )
    assert reply["code"] == "invalid_target"


async def test_a_patrol_may_publish_its_mic_only_while_talking(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(media=RecordingMedia())
    await signal.live()
    patrol = await signal.patrol()
    mic = [{"mid": "0", "source": "mic"}]
    assert (await patrol.request("publish", sdp="v=0", tracks=mic))["code"] == "forbidden"
    assert (await patrol.request("talk_start", classroom_id=None))["type"] == "ok"
    assert (await patrol.request("publish", sdp="v=0", tracks=mic))["type"] == "publish_answer"
    camera = [{"mid": "1", "source": "camera"}]
    reply = await patrol.request("publish", sdp="v=0", tracks=camera)
    assert reply["code"] == "forbidden" and "camera" in reply["message"]
    assert (await patrol.request("talk_stop"))["type"] == "ok"
    assert (await patrol.request("publish", sdp="v=0", tracks=mic))["code"] == "forbidden"


async def test_a_patrol_without_the_talk_control_may_not_talk(signal: Signal) -> None:
    await signal.live()
    patrol = await signal.join(Role.PATROL, controls=frozenset())
    reply = await patrol.request("talk_start", classroom_id=None)
    assert reply["code"] == "forbidden" and "talk" in reply["message"]

"""Per-connection checks and admission: every bad input gets its stable error code."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from signal_harness import LEAD_ROOM, Signal

from signaling.errors import CloseCode
from signaling.grants import Role, default_grant
from signaling.rooms import RoomConfig


async def test_a_message_before_join_is_refused_with_not_joined(signal: Signal) -> None:
    client = signal.connect()
    reply = await client.request("raise_hand")
    assert reply["type"] == "error" and reply["code"] == "not_joined"
    assert (await client.request("ping"))["type"] == "pong"


async def test_a_second_join_on_one_connection_is_refused(signal: Signal) -> None:
    lead = await signal.lead()
    reply = await lead.request("join", version=1, token=signal.token(Role.LEAD, LEAD_ROOM))
    assert reply["code"] == "already_joined"


async def test_another_protocol_version_is_refused(signal: Signal) -> None:
    client = signal.connect()
    reply = await client.request("join", version=2, token=signal.token(Role.LEAD, LEAD_ROOM))
    assert reply["code"] == "unsupported_version"


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
async def test_a_bad_token_is_refused_with_token_invalid(signal: Signal, token: str) -> None:
    reply = await signal.connect().request("join", version=1, token=token)
    assert reply["code"] == "token_invalid"


async def test_an_expired_token_is_refused_with_token_expired(signal: Signal) -> None:
    grant = default_grant("lesson-1", Role.RECEIVER, "r1", classroom_id="r1")
    token = signal.tokens.issue(grant, ttl_s=-5)
    reply = await signal.connect().request("join", version=1, token=token)
    assert reply["code"] == "token_expired"


async def test_a_token_for_another_lesson_never_reaches_this_one(signal: Signal) -> None:
    lead = await signal.lead()
    client = signal.connect()
    token = signal.token(Role.RECEIVER, "r1", lesson_id="lesson-2")
    # Naming this lesson while holding a token for another one is refused outright.
    reply = await client.request("join", version=1, token=token, lesson_id="lesson-1")
    assert reply["code"] == "wrong_lesson"
    # Without the hint the token leads to its own lesson, which does not exist here.
    reply = await client.request("join", version=1, token=token)
    assert reply["code"] == "lesson_not_found"
    await lead.settle()
    assert "participant_joined" not in lead.types()
    assert list(signal.rooms.rooms) == ["lesson-1"]


async def test_a_classroom_not_on_the_roster_is_refused(signal: Signal) -> None:
    receiver = signal.connect()
    reply = await receiver.request("join", version=1, token=signal.token(Role.RECEIVER, "r9"))
    assert reply["code"] == "not_on_roster"
    lead = signal.connect()
    reply = await lead.request("join", version=1, token=signal.token(Role.LEAD, "r1"))
    assert reply["code"] == "not_on_roster"
    # A refused join can be retried on the same connection.
    reply = await lead.request("join", version=1, token=signal.token(Role.LEAD, LEAD_ROOM))
    assert reply["type"] == "joined"


async def test_joins_past_max_peers_get_capacity(make_signal: Callable[..., Signal]) -> None:
    signal = make_signal(RoomConfig(max_peers=2))
    await signal.lead()
    await signal.receiver("r1")
    reply = await signal.connect().request(
        "join", version=1, token=signal.token(Role.RECEIVER, "r2")
    )
    assert reply["code"] == "capacity"
    # Replacing a classroom does not add a peer, so it is allowed.
    await signal.receiver("r1")


async def test_an_oversize_message_is_refused_with_message_too_large(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(max_message_bytes=1024))
    lead = await signal.lead()
    lead.send(type="add_note", id="big", text="评" * 400)
    error = await lead.expect("error")
    assert error["code"] == "message_too_large" and error["id"] == "big"
    assert (await lead.request("ping"))["type"] == "pong"


async def test_a_burst_past_the_rate_limit_is_refused_with_rate_limited(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(rate_per_s=0.001, rate_burst=5))
    client = signal.connect()
    for n in range(8):
        client.send(type="ping", id=f"p{n}")
    replies = [await client.expect(lambda m: True) for _ in range(8)]
    assert [r["type"] for r in replies].count("pong") == 5
    assert {r["code"] for r in replies if r["type"] == "error"} == {"rate_limited"}
    assert signal.rooms.stats.errors["rate_limited"] == 3
    # Each refusal answers the message it refused (issue 17: the id was lost).
    assert [r["id"] for r in replies] == [f"p{n}" for n in range(8)]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (b"\x00\x01binary", "invalid_json"),
        ("[1, 2, 3]", "invalid_message"),
        ('{"id": "x"}', "invalid_message"),
        ('{"type": 7}', "invalid_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "mute", "classroom_id": "r1", "muted": "yes"}', "invalid_message"),
        ('{"type": "ping", "extra": 1}', "invalid_message"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
    ],
)
async def test_malformed_frames_get_their_error_code(
    signal: Signal, frame: str | bytes, code: str
) -> None:
    client = signal.connect()
    client.send_raw(frame)
    assert (await client.expect("error"))["code"] == code
    assert (await client.request("ping"))["type"] == "pong"


async def test_an_invalid_message_names_the_field_and_echoes_the_id(signal: Signal) -> None:
    lead = await signal.lead()
    lead.send_raw(
        json.dumps(
            {"type": "publish", "id": "p1", "sdp": "v=0", "tracks": [{"mid": "0", "source": "x"}]}
        )
    )
    error = await lead.expect("error")
    assert error["id"] == "p1" and error["code"] == "invalid_message"
    assert error["message"].startswith("tracks.0.source:")


async def test_repeated_abuse_closes_only_that_connection(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(max_strikes=3))
    lead = await signal.lead()
    bad = await signal.receiver("r1")
    for _ in range(3):
        bad.send_raw("nonsense")
    assert await bad.wait_closed() == CloseCode.ABUSE
    assert [m["code"] for m in bad.pending() if m["type"] == "error"] == ["invalid_json"] * 3
    assert (await lead.request("ping"))["type"] == "pong"
    await lead.expect("participant_lost")


async def test_a_peer_that_stops_reading_is_closed_without_stalling_the_room(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(outbox_size=4))
    lead = await signal.live()
    slow = await signal.receiver("r1")
    r2 = await signal.receiver("r2")
    slow.conn.stalled = True
    for i in range(12):
        reply = await lead.request("mute", classroom_id="r3", muted=i % 2 == 1)
        assert reply["type"] == "ok"
    assert await slow.wait_closed() == CloseCode.SLOW_CONSUMER
    assert (await lead.expect("participant_lost"))["participant"]["classroom_id"] == "r1"
    assert (await r2.request("ping"))["type"] == "pong"
    assert signal.rooms.stats.errors["slow_consumer"] == 1


async def test_a_grant_without_a_control_is_refused_even_for_a_lead(signal: Signal) -> None:
    base = default_grant("lesson-1", Role.LEAD, "lead", classroom_id=LEAD_ROOM)
    token = signal.tokens.issue(replace(base, controls=frozenset()))
    lead = signal.connect()
    assert (await lead.request("join", version=1, token=token))["type"] == "joined"
    assert (await lead.request("start_lesson"))["code"] == "forbidden"

"""Signaling faults (lost/late messages, a lossy bus), early loss detection from media
silence, and the admin faults API with its refusals (production, disabled, not an admin)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from shared_support import fresh_postgres_database
from signal_harness import Client, RecordingMedia, Signal

from server.app import create_app
from server.settings import Settings
from signaling.bus import LocalBus
from signaling.faults import FaultyBus, MessageFaults, SignalingFaults
from signaling.rooms import RoomConfig

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


@contextlib.asynccontextmanager
async def keepalive(*clients: Client, every_s: float = 0.1) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            for client in clients:
                client.send(type="ping")
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


# -- signaling message faults ---------------------------------------------------------


async def test_messages_from_a_faulted_peer_are_lost_and_it_times_out(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(
        RoomConfig(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.4, resume_window_s=5)
    )
    signal.rooms.faults = faults = SignalingFaults()
    lead = await signal.lead()
    async with keepalive(lead):
        r1 = await signal.receiver("r1")
        faults.set(r1.joined["peer_id"], MessageFaults(), MessageFaults(drop=1.0))
        r1.send(type="ping", id="lost")
        async with keepalive(r1):  # it keeps talking; nothing arrives
            lost = await lead.expect("participant_lost", wait_s=3)
        assert lost["participant"]["peer_id"] == r1.joined["peer_id"]
        assert not any(m.get("id") == "lost" for m in r1.pending())
        assert faults.peers[r1.joined["peer_id"]].dropped_from > 0


async def test_messages_toward_a_faulted_peer_arrive_late_in_order(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal()
    signal.rooms.faults = faults = SignalingFaults()
    r1 = await signal.receiver("r1")
    faults.set(r1.joined["peer_id"], MessageFaults(delay_ms=300), MessageFaults())
    started = time.monotonic()
    first = asyncio.create_task(r1.request("ping"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(r1.request("ping"))
    await first
    took = time.monotonic() - started
    await second
    assert took >= 0.29
    faults.clear(r1.joined["peer_id"])
    await asyncio.sleep(0.35)  # a heartbeat may still be on its delayed way (in order)
    started = time.monotonic()
    await r1.request("ping")
    assert time.monotonic() - started < 0.2


async def test_faults_stay_across_a_resume_and_go_with_the_peer(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(
        RoomConfig(heartbeat_interval_s=0.1, heartbeat_timeout_s=5, resume_window_s=0.3)
    )
    signal.rooms.faults = faults = SignalingFaults()
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    peer_id = r1.joined["peer_id"]
    faults.set(peer_id, MessageFaults(delay_ms=10), MessageFaults())
    faults.drills[peer_id] = {"drill": "10 ms"}
    r1.drop()
    await lead.expect("participant_lost")
    back = signal.connect()
    reply = await back.request("resume", version=1, resume_token=r1.joined["resume_token"])
    assert reply["resumed"] is True and faults.get(peer_id) is not None
    back.drop()
    await lead.expect("participant_left", wait_s=3)
    assert faults.get(peer_id) is None and peer_id not in faults.drills


def test_message_faults_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError, match=r"drop must be in \[0, 1\], got 1.5"):
        MessageFaults(drop=1.5)
    with pytest.raises(ValueError, match="delay_ms must be in"):
        MessageFaults(delay_ms=-1)


async def test_a_lossy_laggy_bus_drops_and_delays_published_messages() -> None:
    inner = LocalBus()
    bus = FaultyBus(inner, drop=0.5, delay_ms=50, seed=3)
    sub = bus.subscribe("lesson:1")
    for i in range(40):
        await bus.publish("lesson:1", {"n": i})
    assert sub.queue.qsize() == 0  # nothing yet: every delivery is late  # type: ignore[attr-defined]
    await asyncio.sleep(0.15)
    got = [sub.queue.get_nowait()["n"] for _ in range(sub.queue.qsize())]  # type: ignore[attr-defined]
    assert 10 <= len(got) <= 30 and bus.dropped == 40 - len(got)
    assert got == sorted(got)
    assert await bus.claim_lesson("l") == inner.node_id
    with pytest.raises(ValueError):
        FaultyBus(inner, drop=2.0)


async def test_a_drill_holds_across_the_classrooms_reconnects(
    make_signal: Callable[..., Signal],
) -> None:
    """A dead uplink stays dead: the resume and the fresh join of the classroom on new
    WebSockets are lost on the way too, and the drill follows the peer that replaces it."""
    from signaling.grants import Role

    signal = make_signal(RoomConfig(heartbeat_interval_s=0.1, resume_window_s=30))
    signal.rooms.faults = faults = SignalingFaults()
    faults.identify = signal.rooms._frame_peer
    lead = await signal.lead()
    async with keepalive(lead):
        r1 = await signal.receiver("r1")
        old_id = r1.joined["peer_id"]
        faults.set(old_id, MessageFaults(), MessageFaults(drop=1.0))
        r1.drop()
        await lead.expect("participant_lost")

        again = signal.connect()
        again.send(type="resume", id="back", version=1, resume_token=r1.joined["resume_token"])
        fresh = signal.connect()
        fresh.send(type="join", id="new", version=1, token=signal.token(Role.RECEIVER, "r1"))
        await again.settle()
        await fresh.settle()
        assert not again.pending() and not fresh.pending()  # neither got through
        assert faults.get(old_id).dropped_from == 2

        # The uplink comes back, slow: the join gets through and the drill moves with it.
        faults.set(old_id, MessageFaults(), MessageFaults(delay_ms=10))
        faults.drills[old_id] = "slow uplink"
        joined = await signal.connect().request(
            "join", version=1, token=signal.token(Role.RECEIVER, "r1")
        )
        new_id = joined["peer_id"]
        assert joined["type"] == "joined" and new_id != old_id
        assert faults.get(old_id) is None and old_id not in faults.drills
        assert faults.get(new_id).from_peer.delay_ms == 10
        assert faults.drills[new_id] == "slow uplink"


# -- early loss from media silence ----------------------------------------------------


class SilentMedia(RecordingMedia):
    """A media port whose peers' last packet time the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: dict[str, int] = {}

    def last_heard_ms(self, peer_id: str) -> int | None:
        return self.heard.get(peer_id)


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


async def test_silent_on_signaling_and_media_is_lost_early_but_media_alone_keeps_it(
    make_signal: Callable[..., Signal],
) -> None:
    media = SilentMedia()
    config = RoomConfig(
        heartbeat_interval_s=0.1, heartbeat_timeout_s=2.0, silence_timeout_s=0.4, resume_window_s=5
    )
    signal = make_signal(config, media)
    lead = await signal.lead()
    async with keepalive(lead):
        r1 = await signal.receiver("r1")
        r2 = await signal.receiver("r2")
        p1, p2 = r1.joined["peer_id"], r2.joined["peer_id"]
        started = time.monotonic()
        stop = asyncio.Event()

        async def media_from_r2() -> None:
            while not stop.is_set():
                media.heard[p2] = now_ms()
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(media_from_r2())
        media.heard[p1] = now_ms()  # r1's media stops now, and so does its signaling
        lost = await lead.expect("participant_lost", wait_s=3)
        assert lost["participant"]["peer_id"] == p1
        assert time.monotonic() - started < 1.5  # early: well before the 2 s heartbeat timeout
        # r2's WebSocket is as silent, but its media flows: heartbeat_timeout_s decides.
        with pytest.raises(AssertionError):
            await lead.expect("participant_lost", wait_s=1.0)
        stop.set()
        await feeder
        lost = await lead.expect("participant_lost", wait_s=3)
        assert lost["participant"]["peer_id"] == p2


async def test_a_blip_shorter_than_the_silence_timeout_never_shows_as_lost(
    make_signal: Callable[..., Signal],
) -> None:
    """Pings lost in a blip leave the WebSocket silent past heartbeat_timeout_s; the media
    that came back keeps the peer. Only three heartbeat timeouts of a silent WebSocket
    close it while its media flows."""
    media = SilentMedia()
    config = RoomConfig(
        heartbeat_interval_s=0.1, heartbeat_timeout_s=1.0, silence_timeout_s=0.6, resume_window_s=5
    )
    signal = make_signal(config, media)
    lead = await signal.lead()
    async with keepalive(lead):
        r1 = await signal.receiver("r1")
        p1 = r1.joined["peer_id"]
        media.heard[p1] = now_ms()
        await asyncio.sleep(0.45)  # the blip: no message, no media, under the 0.6 s threshold
        stop = asyncio.Event()

        async def media_back() -> None:
            while not stop.is_set():
                media.heard[p1] = now_ms()
                await asyncio.sleep(0.05)

        started = time.monotonic()
        feeder = asyncio.create_task(media_back())
        # The WebSocket stays silent (its pings were lost): past the 1 s heartbeat timeout,
        # and still not lost while media arrives.
        with pytest.raises(AssertionError):
            await lead.expect("participant_lost", wait_s=1.5)
        lost = await lead.expect("participant_lost", wait_s=3)
        assert lost["participant"]["peer_id"] == p1
        assert 2.0 < time.monotonic() - started + 0.45 < 3.6  # three heartbeat timeouts
        stop.set()
        await feeder


# -- the admin API ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The faults API on SQLite (the data folder's, "") and on PostgreSQL (issue 17: the API
    test modules run on both)."""
    if request.param == "sqlite":
        yield ""
        return
    with fresh_postgres_database() as url:
        yield url


def _client(tmp_path: Path, database_url: str, **settings: Any) -> TestClient:
    return TestClient(
        create_app(
            Settings(
                data_dir=tmp_path,
                database_url=database_url,
                seed_demo=True,
                secret_key=SECRET,
                **settings,
            )
        )
    )


def _logins(client: TestClient, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    """Bearer headers of the demo district's accounts by role (their passwords are printed)."""
    import re

    printed = capsys.readouterr().out
    headers = {}
    for role, username, password in re.findall(
        r"^\s+(admin|teacher|inspector)\s+(\S+)\s+(\S+)", printed, re.M
    ):
        reply = client.post("/api/auth/login", json={"username": username, "password": password})
        headers[role] = {"Authorization": f"Bearer {reply.json()['token']}"}
    client.cookies.clear()
    return headers


def _admin(client: TestClient, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return _logins(client, capsys)["admin"]


def _demo_lesson(client: TestClient, headers: dict[str, str]) -> str:
    """A scheduled lesson of the demo district (the API looks a lesson up in the caller's
    scope before anything else: an unknown id is 404 lesson_not_found)."""
    lessons = client.get("/api/lessons", headers=headers).json()
    return str(next(lesson["id"] for lesson in lessons if lesson["state"] == "scheduled"))


def test_settings_refuse_faults_in_production(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be on in production"):
        Settings(data_dir=tmp_path, production=True, faults=True)


@pytest.mark.parametrize(
    ("settings", "status", "code"),
    [
        ({"production": True}, 403, "faults_forbidden_in_production"),
        ({}, 409, "faults_disabled"),
        ({"faults": True}, 404, "lesson_not_live"),
    ],
)
def test_the_faults_api_is_refused_in_production_and_when_disabled(
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, Any],
    status: int,
    code: str,
) -> None:
    with _client(tmp_path, database_url, **settings) as client:
        headers = _admin(client, capsys)
        lesson = _demo_lesson(client, headers)
        body = {"to_peer": {"media": {"drop": 0.05}}}
        for method, path in (
            ("PUT", f"/api/lessons/{lesson}/faults/p1"),
            ("DELETE", f"/api/lessons/{lesson}/faults/p1"),
        ):
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, response.text
            assert response.json()["error"]["code"] == code
        listed = client.get(f"/api/lessons/{lesson}/faults", headers=headers)
        if status == 404:
            assert listed.status_code == 200 and listed.json() == []
        else:
            assert listed.json()["error"]["code"] == code


def test_the_faults_api_is_for_admins_and_checks_its_body(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with _client(tmp_path, database_url, faults=True) as client:
        logins = _logins(client, capsys)
        headers = logins["admin"]
        path = f"/api/lessons/{_demo_lesson(client, headers)}/faults/p1"
        response = client.put(path, json={})
        assert response.status_code == 401
        response = client.put(path, json={}, headers=logins["teacher"])
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        bad = [
            {"to_peer": {"media": {"drop": 1.5}}},
            {"to_peer": {"media": {"rate_kbps": 1}}},
            {"to_peer": {"media": {"reorder": 1.0}}},
            {"from_peer": {"signaling": {"delay_ms": -5}}},
            {"sideways": {}},
        ]
        for body in bad:
            response = client.put(path, json=body, headers=headers)
            assert response.status_code == 422, body
            assert response.json()["error"]["code"] == "invalid_request"

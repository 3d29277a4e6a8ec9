"""Load: 100 peers join one lesson at once through the real service, and capacity refusals.

The whole service runs in this process (uvicorn on a free loopback port, SQLite), and every
peer is a SyntheticTerminal speaking the real protocol: POST /api/join/{code}, WebSocket
join. A lead and a few receiving classrooms publish and subscribe real media before the
burst, so media keeps flowing while the joins land; the burst's peers are signaling-only.
The node's capacity (``max_peers``) is set to exactly 100 peers, and the burst asks for more:
the extra joins must get the ``capacity`` error while nobody else is hurt.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from media.synthetic.terminal import SyntheticTerminal, TerminalError
from server.api.links import make_link
from server.app import create_app
from server.db import open_database
from server.db.models import (
    Account,
    AccountRole,
    Classroom,
    ClassroomKind,
    Lesson,
    School,
    SchoolKind,
    lesson_receivers,
    utcnow,
)
from server.settings import Settings
from server.state import AppState
from signaling.grants import Role

LOOPBACK = ["127.0.0.1"]
CAPACITY = 100
MEDIA_RECEIVERS = 4  # publish and subscribe real media through the burst
RECEIVERS = 64  # the API's roster limit; the rest of the burst are patrol peers
EXTRA = 10  # joins past the capacity
BURST_WINDOW_S = 5.0


@dataclass
class Codes:
    lead: str
    receivers: list[str] = field(default_factory=list)
    patrols: list[str] = field(default_factory=list)
    lesson_id: str = ""


async def _seed(settings: Settings, patrols: int) -> Codes:
    """One lesson: a lead classroom, RECEIVERS receiving classrooms, `patrols` patrol links."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db, db.sessions.begin() as session:
        central = School(name="城关中心校", kind=SchoolKind.CENTRAL.value, district="示范县")
        point = School(name="石门教学点", kind=SchoolKind.TEACHING_POINT.value, district="示范县")
        session.add_all([central, point])
        await session.flush()
        lead = Classroom(school_id=central.id, name="录播教室", kind=ClassroomKind.LEAD.value)
        rooms = [
            Classroom(school_id=point.id, name=f"教室{n}", kind=ClassroomKind.RECEIVING.value)
            for n in range(RECEIVERS)
        ]
        # Nobody signs in here: the links are the credentials, so no password hashing.
        teacher = Account(
            username="t", display_name="王老师", role=AccountRole.TEACHER.value, password_hash="!"
        )
        inspector = Account(
            username="i",
            display_name="李巡课员",
            role=AccountRole.INSPECTOR.value,
            password_hash="!",
        )
        session.add_all([lead, *rooms, teacher, inspector])
        await session.flush()
        start = utcnow()
        lesson = Lesson(
            title="负载",
            teacher_id=teacher.id,
            lead_classroom_id=lead.id,
            scheduled_start=start,
            scheduled_end=start + timedelta(minutes=45),
        )
        session.add(lesson)
        await session.flush()
        await session.execute(
            lesson_receivers.insert(),
            [
                {"lesson_id": lesson.id, "classroom_id": room.id, "position": n}
                for n, room in enumerate(rooms)
            ],
        )
        codes = Codes(
            lead=(await make_link(session, lesson, Role.LEAD, classroom_id=lead.id)).code,
            lesson_id=lesson.id,
        )
        for room in rooms:
            link = await make_link(session, lesson, Role.RECEIVER, classroom_id=room.id)
            codes.receivers.append(link.code)
        for _ in range(patrols):
            link = await make_link(session, lesson, Role.PATROL, account_id=inspector.id)
            codes.patrols.append(link.code)
    return codes


@contextlib.asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[tuple[str, AppState]]:
    """The whole service (uvicorn, this event loop) on a free loopback port, and its state."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=0, log_level="warning", backlog=512
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise RuntimeError("the service did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server.lifespan.state["app"]
    finally:
        server.should_exit = True
        await serving


def _metric(text: str, name: str, labels: str = "") -> dict[str, float]:
    """Samples of one metric: {label text: value}."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    return {m.group(1) or "": float(m.group(2)) for m in pattern.finditer(text)}


async def _wait(condition, within_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def _join(terminal: SyntheticTerminal) -> tuple[str, float]:
    """'joined' or the error code, and when the answer came."""
    try:
        await terminal.connect()
        outcome = "joined"
    except TerminalError as exc:
        outcome = exc.code
    return outcome, time.monotonic()


async def test_a_hundred_peers_join_at_once_and_the_node_refuses_past_capacity(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        seed_demo=False,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        media_addresses=LOOPBACK,
        max_peers=CAPACITY,
    )
    burst_size = CAPACITY - 1 - MEDIA_RECEIVERS + EXTRA
    codes = await _seed(settings, patrols=burst_size - (RECEIVERS - MEDIA_RECEIVERS))
    async with _service(settings) as (base, state):
        lead = SyntheticTerminal(base, codes.lead, host_addresses=LOOPBACK)
        media = [
            SyntheticTerminal(base, code, host_addresses=LOOPBACK)
            for code in codes.receivers[:MEDIA_RECEIVERS]
        ]
        burst = [
            SyntheticTerminal(base, code, publish=False, request_timeout_s=60)
            for code in codes.receivers[MEDIA_RECEIVERS:] + codes.patrols
        ]
        try:
            await lead.start(start_lesson=True)
            await asyncio.gather(*(m.start() for m in media))
            await _wait(
                lambda: all(m.frames("video") >= 10 for m in media),
                30,
                "media receivers got no video before the burst",
            )

            # Media keeps flowing during the burst: the longest gap between new video frames
            # at any media receiver, sampled every 50 ms.
            stalls = [0.0] * len(media)

            async def watch_media() -> None:
                last = [(m.frames("video"), time.monotonic()) for m in media]
                while True:
                    await asyncio.sleep(0.05)
                    now = time.monotonic()
                    for n, m in enumerate(media):
                        frames = m.frames("video")
                        if frames != last[n][0]:
                            last[n] = (frames, now)
                        stalls[n] = max(stalls[n], now - last[n][1])

            watcher = asyncio.create_task(watch_media())
            frames_before = [m.frames("video") for m in media]
            started = time.monotonic()
            outcomes = await asyncio.gather(*(_join(t) for t in burst))
            burst_s = max(at for _, at in outcomes) - started
            await asyncio.sleep(1.0)  # media after the burst, too
            watcher.cancel()
            frames_after = [m.frames("video") for m in media]

            # Every join answered: joined, or refused for capacity; nothing else.
            kinds = [o for o, _ in outcomes]
            joined = [t for t, o in zip(burst, kinds, strict=True) if o == "joined"]
            refused = [t for t, o in zip(burst, kinds, strict=True) if o != "joined"]
            assert {o for o in kinds if o != "joined"} <= {"capacity"}, kinds
            assert len(joined) == CAPACITY - 1 - MEDIA_RECEIVERS and len(refused) == EXTRA
            print(f"\n{len(burst)} joins answered in {burst_s:.2f} s; media stalls {stalls}")
            assert burst_s < BURST_WINDOW_S * 4, f"the burst took {burst_s:.1f} s"

            # No one half-joined: the room holds exactly the answered peers.
            room = state.rooms.rooms[codes.lesson_id]
            members = [lead, *media, *joined]
            assert set(room.peers) == {t.joined["peer_id"] for t in members}
            assert state.rooms.peer_count == CAPACITY
            visible = {t.joined["peer_id"] for t in members if t.joined["role"] != "patrol"}
            assert {p.peer_id for p in room.classrooms.values()} == visible
            # The lead's own view of the roster agrees (joined + participant_joined events).
            await _wait(
                lambda: _seen_by(lead) == visible - {lead.joined["peer_id"]},
                10,
                "the lead's roster differs from the room's",
            )
            # Refused connections stay open and can try again later; they hold no peer.
            assert all(t.closed_code is None and not t.joined for t in refused)
            assert (await refused[0].request({"type": "ping"}))["type"] == "pong"
            with pytest.raises(TerminalError) as again:
                await refused[0].request({"type": "raise_hand"})
            assert again.value.code == "not_joined"

            assert all(a - b >= 15 for a, b in zip(frames_after, frames_before, strict=True))
            assert max(stalls) < 2.0, f"media stalled {max(stalls):.2f} s during the burst"

            async with httpx.AsyncClient(base_url=base) as http:
                metrics = (await http.get("/metrics")).text
            errors = _metric(metrics, "tongke_signaling_errors_total")
            # The refusals, and the not_joined this test provoked; nothing else.
            assert errors == {'{code="capacity"}': EXTRA, '{code="not_joined"}': 1}, errors
            assert not any(_metric(metrics, "tongke_errors_logged_total").values())
            statuses = _metric(metrics, "tongke_http_requests_total")
            assert not [k for k, v in statuses.items() if 'status="5' in k and v], statuses
            peers = _metric(metrics, "tongke_peers")
            assert sum(peers.values()) == CAPACITY, peers
            # Everyone leaves at once (a leave, not a dropped socket that stays resumable).
            members_left = await asyncio.gather(
                *(t.request({"type": "leave"}) for t in [*joined, *media, lead]),
                return_exceptions=True,
            )
            assert all(isinstance(r, dict) for r in members_left), members_left
        finally:
            await asyncio.gather(*(t.close() for t in [*burst, *media, lead]))
        # After everyone left, the room is gone and nobody is counted.
        await _wait(lambda: not state.rooms.rooms, 10, "the room outlived its peers")
        assert state.rooms.peer_count == 0
        assert sum(state.rooms.stats.peers.values()) == 0


def _seen_by(terminal: SyntheticTerminal) -> set[str]:
    """The visible participants a terminal knows of, from joined and later events."""
    seen = {p["peer_id"] for p in terminal.joined["participants"]}
    for _, message in terminal.events:
        if message["type"] == "participant_joined":
            seen.add(message["participant"]["peer_id"])
        elif message["type"] == "participant_left":
            seen.discard(message["peer_id"])
    seen.discard(terminal.joined["peer_id"])
    return seen

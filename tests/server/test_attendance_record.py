"""Durable attendance: what classrooms did in a lesson (join, drop, rejoin, leave, stage,
quality) lands in attendance_spans and lesson_attendance as it happened, on SQLite and
PostgreSQL; late and missing classrooms are flagged to the lead while the lesson is live.

Real app, real signaling over the test client's WebSockets; quality reports enter through
the media listener the SFU calls (RoomManager.quality_changed).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from app_support import make_settings
from sqlalchemy import select
from starlette.testclient import WebSocketTestSession

from server.db.attendance_models import AttendanceSpan, LessonAttendance
from server.district_time import local_day
from server.state import AppState
from signaling.media_port import QualityReport

LATE_AFTER_S = 1.0


def _server_conftest() -> Any:
    """tests/server/conftest.py by path (a bare `from conftest import` may find another
    folder's conftest when several folders run together)."""
    spec = importlib.util.spec_from_file_location(
        "server_conftest_for_attendance", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


conftest = _server_conftest()


@pytest.fixture(params=conftest.BACKENDS)
def district(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with conftest.database_url_for(request.param, tmp_path) as url:
        settings = make_settings(tmp_path, url, attendance_late_after_s=LATE_AFTER_S)
        with conftest.district_app(settings) as value:
            yield value


def reply(ws: WebSocketTestSession, *wanted: str) -> dict[str, Any]:
    """The next message of one of the `wanted` types (others are skipped)."""
    while True:
        message = json.loads(ws.receive_text())
        if message["type"] in wanted:
            return message


class Classroom:
    """One classroom's connection: join link, token, WebSocket."""

    def __init__(self, district: Any, stack: ExitStack, lesson: dict[str, Any], room: str) -> None:
        self.district = district
        self.stack = stack
        self.code = district.link(lesson, room)["code"]
        self.ws: WebSocketTestSession | None = None
        self.peer_id = ""

    def join(self) -> dict[str, Any]:
        token = self.district.client.post(f"/api/join/{self.code}").json()["token"]
        inner = ExitStack()
        self.ws = inner.enter_context(self.district.client.websocket_connect("/ws"))
        self.close_ws = inner.close
        self.stack.callback(inner.close)
        self.ws.send_json({"type": "join", "id": "j", "version": 1, "token": token})
        joined = reply(self.ws, "joined", "error")
        assert joined["type"] == "joined", joined
        self.peer_id = joined["peer_id"]
        return joined

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        self.ws.send_json(message)
        return reply(self.ws, "ok", "error")

    def drop(self) -> None:
        """The connection dies without a word (a power cut, a dead uplink)."""
        self.close_ws()
        self.ws = None


def wait_for(check: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def spans(district: Any, lesson_id: str) -> list[AttendanceSpan]:
    async def read(state: AppState) -> list[AttendanceSpan]:
        async with state.db.sessions.begin() as session:
            rows = await session.scalars(
                select(AttendanceSpan)
                .where(AttendanceSpan.lesson_id == lesson_id)
                .order_by(AttendanceSpan.id)
            )
            return list(rows)

    return list(district.run(read))


def summary(district: Any, lesson_id: str) -> dict[str, LessonAttendance]:
    async def read(state: AppState) -> dict[str, LessonAttendance]:
        async with state.db.sessions.begin() as session:
            rows = await session.scalars(
                select(LessonAttendance).where(LessonAttendance.lesson_id == lesson_id)
            )
            return {row.classroom_id: row for row in rows}

    return dict(district.run(read))


def quality(district: Any, lesson_id: str, peer_id: str, loss: float, rtt: float) -> None:
    async def report(state: AppState) -> None:
        state.rooms.quality_changed(
            lesson_id,
            peer_id,
            QualityReport(loss=loss, jitter_ms=loss * 100, rtt_ms=rtt, bitrate_kbps=900),
        )

    district.run(report)


def test_attendance_rows_match_join_drop_rejoin_leave(district: Any) -> None:
    lesson = district.lesson(receivers=3)
    lesson_id = lesson["id"]
    a_id, b_id, c_id = (r["id"] for r in lesson["receivers"])
    with ExitStack() as stack:
        lead = Classroom(district, stack, lesson, lesson["lead"]["id"])
        a = Classroom(district, stack, lesson, a_id)
        b = Classroom(district, stack, lesson, b_id)
        lead.join()
        a.join()  # before the start: on time
        assert lead.send({"type": "start_lesson", "id": "s"})["type"] == "ok"
        for loss, rtt in ((0.0, 40.0), (0.02, 60.0), (0.10, 200.0)):
            quality(district, lesson_id, a.peer_id, loss, rtt)
        assert lead.send({"type": "set_stage", "id": "st", "classroom_id": a_id})["type"] == "ok"
        time.sleep(0.3)
        assert lead.send({"type": "set_stage", "id": "st2", "classroom_id": None})["type"] == "ok"

        # Past the deadline the lead hears who is missing.
        assert lead.ws is not None
        flags = reply(lead.ws, "attendance_flags")
        assert [(f["classroom_id"], f["status"]) for f in flags["classrooms"]] == [
            (b_id, "missing"),
            (c_id, "missing"),
        ]

        a.drop()  # lost, then back with a new join
        assert wait_for(lambda: any(s.ended == "lost" for s in spans(district, lesson_id)))
        time.sleep(0.2)
        a.join()
        b.join()  # late
        flags = reply(lead.ws, "attendance_flags")
        assert [(f["classroom_id"], f["status"]) for f in flags["classrooms"]] == [
            (b_id, "late"),
            (c_id, "missing"),
        ]
        late = flags["classrooms"][0]
        assert late["late_s"] > LATE_AFTER_S and late["joined_at"]
        time.sleep(0.2)
        assert a.ws is not None
        a.ws.send_json({"type": "leave", "id": "l"})
        assert wait_for(lambda: any(s.ended == "left" for s in spans(district, lesson_id)))
        assert lead.send({"type": "end_lesson", "id": "e"})["type"] == "ok"

    by_room: dict[str, list[tuple[str, str | None]]] = {}
    for span in spans(district, lesson_id):
        by_room.setdefault(span.classroom_id, []).append((span.began, span.ended))
        assert span.left_at is not None and span.left_at >= span.joined_at
    assert by_room[a_id] == [("joined", "lost"), ("joined", "left")]
    assert by_room[b_id] == [("joined", "ended")]
    assert by_room[lesson["lead"]["id"]] == [("joined", "ended")]
    assert c_id not in by_room

    rows = wait_for(lambda: (r := summary(district, lesson_id)) and r[a_id].quality_samples and r)
    ended = district.client.get(f"/api/lessons/{lesson_id}", headers=district.headers("admin"))
    started_at = datetime.fromisoformat(ended.json()["started_at"])
    ended_at = datetime.fromisoformat(ended.json()["ended_at"])
    live_s = (ended_at - started_at).total_seconds()

    row_a = rows[a_id]
    assert (row_a.status, row_a.role, row_a.joins, row_a.periods_lost) == (
        "present",
        "receiver",
        2,
        1,
    )
    assert row_a.late_s == 0.0
    assert 0 < row_a.present_s < live_s  # it was away between the drop and the rejoin
    assert 0.25 <= row_a.stage_s <= 1.5
    assert row_a.quality_samples == 3
    assert row_a.loss_p50 == pytest.approx(0.02) and row_a.loss_p95 == pytest.approx(0.10)
    assert row_a.rtt_p50_ms == pytest.approx(60.0) and row_a.rtt_p95_ms == pytest.approx(200.0)
    assert row_a.left_at is not None and row_a.left_at < ended_at

    row_b = rows[b_id]
    assert (row_b.status, row_b.joins, row_b.periods_lost) == ("late", 1, 0)
    assert row_b.late_s is not None and row_b.late_s > LATE_AFTER_S
    assert row_b.left_at == ended_at

    row_c = rows[c_id]
    assert (row_c.status, row_c.joins, row_c.present_s, row_c.joined_at) == ("absent", 0, 0.0, None)

    lead_row = rows[lesson["lead"]["id"]]
    assert (lead_row.role, lead_row.status) == ("lead", "present")
    assert lead_row.present_s == pytest.approx(live_s, abs=0.1)
    zone = district.state.settings.zone
    day = local_day(datetime.fromisoformat(lesson["scheduled_start"]), zone)
    assert {row.day for row in rows.values()} == {day}

    # The report API says the same.
    report = district.client.get(
        f"/api/lessons/{lesson_id}/attendance", headers=district.headers("teacher")
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["live_s"] == pytest.approx(live_s, abs=0.1)
    listed = {c["classroom"]["id"]: c for c in body["classrooms"]}
    assert list(listed) == [lesson["lead"]["id"], a_id, b_id, c_id]
    assert listed[a_id]["present_s"] == row_a.present_s
    assert listed[a_id]["periods_lost"] == 1
    assert listed[a_id]["quality"]["rtt_p95_ms"] == pytest.approx(200.0)
    assert listed[c_id]["status"] == "absent"


def test_the_report_is_for_whoever_reads_the_lesson(district: Any) -> None:
    lesson = district.lesson(receivers=1)
    path = f"/api/lessons/{lesson['id']}/attendance"
    for role, expected in (
        ("admin", 200),
        ("inspector", 200),
        ("teacher", 200),
        ("other_teacher", 200),
        ("anonymous", 401),
    ):
        response = district.client.get(path, headers=district.headers(role))
        assert response.status_code == expected, (role, response.text)
    scheduled = district.client.get(path, headers=district.headers("admin")).json()
    assert scheduled["live_s"] is None
    assert {c["status"] for c in scheduled["classrooms"]} == {"pending"}
    missing = district.client.get("/api/lessons/nope/attendance", headers=district.headers("admin"))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "lesson_not_found")

"""Classroom terminals over the real API on SQLite and PostgreSQL: an admin makes an
enrollment code, a device trades it once for a credential, sees its classroom's day on the
service's clock (clock_offset_s puts it at 10:00 Beijing time on a fixed school day) and
gets join tokens for its own lessons only; revoked and unknown credentials are refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from app_support import make_settings
from conftest import BACKENDS, District, database_url_for, district_app

BEIJING = ZoneInfo("Asia/Shanghai")
# The service's "now" in these tests: a Monday morning in the district.
SCHOOL_MORNING = datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[District]:
    data_dir: Path = tmp_path_factory.mktemp("terminals")
    offset = (SCHOOL_MORNING - datetime.now(UTC)).total_seconds()
    with database_url_for(request.param, data_dir) as url:
        settings = make_settings(data_dir, url, clock_offset_s=offset)
        with district_app(settings) as value:
            yield value


def _lesson(w: District, start: datetime, lead: str, receivers: list[str], **extra: Any) -> Any:
    body = {
        "title": extra.pop("title", "口算乘法"),
        "teacher_id": w.ids["teacher"],
        "lead_classroom_id": lead,
        "receiver_classroom_ids": receivers,
        "scheduled_start": start.isoformat(),
        "scheduled_end": (start + timedelta(minutes=40)).isoformat(),
        "subject": "数学",
        **extra,
    }
    return w.admin_post("/api/lessons", body)


def _enroll(w: District, classroom_id: str, name: str = "讲台一体机") -> dict[str, Any]:
    code = w.admin_post(f"/api/classrooms/{classroom_id}/terminal-codes", {})
    response = w.client.post("/api/terminal/enroll", json={"code": code["code"], "name": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _device(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def test_a_code_enrolls_one_device_once_and_is_listed_with_its_last_seen_time(
    world: District,
) -> None:
    room = world.classroom(kind="receiving")
    code = world.admin_post(f"/api/classrooms/{room}/terminal-codes", {})
    assert len(code["code"]) == 9 and code["code"][4] == "-"
    assert code["enroll_url"].endswith(f"/terminal/?enroll={code['code']}")
    # Typed by a person: lower case, without the dash.
    typed = code["code"].replace("-", " ").lower()
    enrolled = world.client.post("/api/terminal/enroll", json={"code": typed, "name": "一体机"})
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert body["classroom"]["id"] == room and body["terminal"]["name"] == "一体机"
    again = world.client.post("/api/terminal/enroll", json={"code": code["code"]})
    assert (again.status_code, again.json()["error"]["code"]) == (410, "enroll_code_used")

    listed = world.client.get(f"/api/classrooms/{room}/terminals", headers=world.headers("admin"))
    (row,) = listed.json()
    assert row["id"] == body["terminal"]["id"] and row["revoked_at"] is None
    assert row["last_seen_at"] is not None
    assert "credential" not in row and "credential_sha256" not in row


def test_an_unknown_code_is_refused(world: District) -> None:
    response = world.client.post("/api/terminal/enroll", json={"code": "ABCD-EFGH"})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "enroll_code_unknown")


def test_the_terminal_sees_its_classrooms_day_on_the_service_clock(world: District) -> None:
    school = world.school()
    lead = world.classroom(school, "lead")
    room = world.classroom(school, "receiving")
    other = world.classroom(school, "receiving")
    credential = _enroll(world, room)["credential"]
    morning = _lesson(world, SCHOOL_MORNING + timedelta(minutes=30), lead, [room], title="早")
    _lesson(world, SCHOOL_MORNING + timedelta(hours=1), lead, [other], title="别的教室")
    # 00:30 the next day in Beijing (16:30 UTC today): another day for the district.
    _lesson(world, SCHOOL_MORNING.replace(hour=0, minute=30) + timedelta(days=1), lead, [room])
    # 23:50 the day before: yesterday.
    _lesson(world, SCHOOL_MORNING.replace(hour=23, minute=50) - timedelta(days=1), lead, [room])

    response = world.client.get("/api/terminal/today", headers=_device(credential))
    assert response.status_code == 200, response.text
    today = response.json()
    assert today["day"] == "2026-03-02" and today["timezone"] == "Asia/Shanghai"
    server_time = datetime.fromisoformat(today["server_time"])
    assert abs((server_time - SCHOOL_MORNING).total_seconds()) < 120
    assert [lesson["id"] for lesson in today["lessons"]] == [morning["id"]]
    (lesson,) = today["lessons"]
    assert lesson["role"] == "receiver" and lesson["start_mode"] == "click"
    assert today["classroom"]["id"] == room
    assert today["join_before_s"] == 300 and today["clock_warn_s"] == 120


def test_a_terminal_joins_its_own_lessons_in_its_classrooms_role(world: District) -> None:
    school = world.school()
    lead = world.classroom(school, "lead")
    room = world.classroom(school, "receiving")
    lesson = _lesson(world, SCHOOL_MORNING + timedelta(minutes=3), lead, [room])
    elsewhere = _lesson(world, SCHOOL_MORNING, lead, [world.classroom(school, "receiving")])
    lead_key = _enroll(world, lead)["credential"]
    room_key = _enroll(world, room)["credential"]
    tokens = world.state.tokens

    joined = world.client.post(
        f"/api/terminal/lessons/{lesson['id']}/join", headers=_device(room_key)
    )
    assert joined.status_code == 200, joined.text
    grant = tokens.verify(joined.json()["token"])
    assert (grant.role.value, grant.classroom_id, grant.lesson_id) == (
        "receiver",
        room,
        lesson["id"],
    )
    as_lead = world.client.post(
        f"/api/terminal/lessons/{lesson['id']}/join", headers=_device(lead_key)
    )
    assert as_lead.json()["role"] == "lead" and as_lead.json()["start_mode"] == "click"

    # Not this classroom's lesson: as absent as one that does not exist.
    refused = world.client.post(
        f"/api/terminal/lessons/{elsewhere['id']}/join", headers=_device(room_key)
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "lesson_not_found")

    world.client.post(f"/api/lessons/{lesson['id']}/end", headers=world.headers("admin"))
    ended = world.client.post(
        f"/api/terminal/lessons/{lesson['id']}/join", headers=_device(room_key)
    )
    assert (ended.status_code, ended.json()["error"]["code"]) == (409, "lesson_ended")


def test_a_revoked_terminal_is_refused_and_others_keep_working(world: District) -> None:
    room = world.classroom(kind="receiving")
    first = _enroll(world, room, "一号")
    second = _enroll(world, room, "二号")
    revoked = world.client.delete(
        f"/api/terminals/{first['terminal']['id']}", headers=world.headers("admin")
    )
    assert revoked.status_code == 204
    refused = world.client.get("/api/terminal/today", headers=_device(first["credential"]))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "terminal_revoked"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert (
        world.client.get("/api/terminal/today", headers=_device(second["credential"])).status_code
        == 200
    )
    rows = world.client.get(
        f"/api/classrooms/{room}/terminals", headers=world.headers("admin")
    ).json()
    assert [(r["name"], r["revoked_at"] is not None) for r in rows] == [
        ("一号", True),
        ("二号", False),
    ]
    # Revoking twice is harmless.
    again = world.client.delete(
        f"/api/terminals/{first['terminal']['id']}", headers=world.headers("admin")
    )
    assert again.status_code == 204


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "terminal_unauthorized"),
        ({"Authorization": "Basic abc"}, "terminal_unauthorized"),
        ({"Authorization": "Bearer not-a-credential"}, "terminal_unknown"),
    ],
)
def test_a_missing_or_unknown_credential_is_refused(
    world: District, headers: dict[str, str], code: str
) -> None:
    response = world.client.get("/api/terminal/today", headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (401, code)


def test_last_seen_moves_when_the_terminal_asks_again(world: District) -> None:
    room = world.classroom(kind="receiving")
    enrolled = _enroll(world, room)

    async def backdate(state: Any) -> None:
        from server.db.terminal_models import ClassroomTerminal

        async with state.db.sessions.begin() as session:
            row = await session.get(ClassroomTerminal, enrolled["terminal"]["id"])
            row.last_seen_at = datetime(2026, 1, 1, tzinfo=UTC)

    world.run(backdate)
    world.client.get("/api/terminal/today", headers=_device(enrolled["credential"]))
    (row,) = world.client.get(
        f"/api/classrooms/{room}/terminals", headers=world.headers("admin")
    ).json()
    assert datetime.fromisoformat(row["last_seen_at"]) > datetime(2026, 1, 2, tzinfo=UTC)

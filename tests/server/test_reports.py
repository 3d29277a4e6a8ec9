"""督导 reports against a hand-computed district, on SQLite and PostgreSQL.

Two weeks (2026-03-02 Mon .. 03-15 Sun, Asia/Shanghai). Counties 甲县 (A) and 乙县 (B);
A1 and B1 are central schools with a lead classroom, A2 and B2 teaching points.

- L1 Mon 03-02 08:00, A1 -> A2r1, A2r2, 数学: live 08:02-08:47; r1 present 45 min, loss
  1 %; r2 late, 30 min, loss 7 %; a talkback and a patrol note; recording R1 exemplary, 90.
- L2 Wed 03-04 08:00, A1 -> A2r1, 数学: live 08:10-08:40 (late start); r1 absent;
  recording R2 with one replay evaluation.
- L3 Tue 03-10 08:00, A1 -> A2r1, A2r2, 数学: cancelled (ended, never live).
- L4 Thu 03-12 08:00, A1 -> A2r2, 英语: never started.
- L5 Mon 03-02 09:00, B1 -> B2r, 语文: live 09:00-09:45; B2r present 45 min, no samples.
- L6 Tue 03-03 10:00, B1 -> A2r1, 语文: live 10:00-10:30; A2r1 present 30 min, loss 12 %.
- L7 Mon 03-16 08:00, A1 -> A2r1: outside the period.
- a 数学 slot of A1 cancelled in the timetable on Wed 03-11 (a slot exception).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from app_support import make_settings
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from shared_support import fresh_postgres_database

from server.accounts_cli import create_account
from server.app import create_app
from server.db.attendance_models import LessonAttendance
from server.db.calendar_models import SlotException, Term, TimetableSlot
from server.db.models import (
    Account,
    Classroom,
    County,
    EvaluationNote,
    Lesson,
    LibraryEvaluation,
    LibraryRecording,
    PatrolTalk,
    School,
    lesson_receivers,
)
from server.passwords import hash_password

PASSWORD = "correct horse battery"
ZONE = ZoneInfo("Asia/Shanghai")
PERIOD = {"period": "custom", "date_from": "2026-03-02", "date_to": "2026-03-15"}


def at(day: str, clock: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), ZONE).astimezone(
        UTC
    )


async def build(state: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    async with state.db.sessions.begin() as s:
        for key, name in (("A", "甲县"), ("B", "乙县")):
            county = County(name=name)
            s.add(county)
            await s.flush()
            ids[key] = county.id
        for key, county, kind in (
            ("A1", "A", "central"),
            ("A2", "A", "teaching_point"),
            ("B1", "B", "central"),
            ("B2", "B", "teaching_point"),
        ):
            school = School(name=f"{key}校", kind=kind, county_id=ids[county])
            s.add(school)
            await s.flush()
            ids[key] = school.id
        for key, school in (("A1L", "A1"), ("A2r1", "A2"), ("A2r2", "A2"), ("B1L", "B1"),
                            ("B2r", "B2")):  # fmt: skip
            room = Classroom(school_id=ids[school], name=key)
            s.add(room)
            await s.flush()
            ids[key] = room.id
        secret = hash_password(PASSWORD)
        for key, role, home in (
            ("tA", "teacher", {"school_id": ids["A1"]}),
            ("tB", "teacher", {"school_id": ids["B1"]}),
            ("adminA", "admin", {"county_id": ids["A"]}),
            ("adminB", "admin", {"county_id": ids["B"]}),
            ("adminA1", "admin", {"school_id": ids["A1"]}),
            ("inspA", "inspector", {"county_id": ids["A"]}),
        ):
            account = Account(username=key, display_name=key, role=role, password_hash=secret,
                              **home)  # fmt: skip
            s.add(account)
            await s.flush()
            ids[key] = account.id

        def lesson(key: str, day: str, clock: str, lead: str, receivers: list[str],
                   subject: str, teacher: str, **extra: Any) -> None:  # fmt: skip
            start = at(day, clock)
            row = Lesson(id=f"{key:0<32}", title=key, teacher_id=ids[teacher],
                         lead_classroom_id=ids[lead], scheduled_start=start,
                         scheduled_end=start + timedelta(minutes=45), subject=subject,
                         **extra)  # fmt: skip
            s.add(row)
            ids[key] = row.id

        lesson(
            "L1",
            "2026-03-02",
            "08:00",
            "A1L",
            ["A2r1", "A2r2"],
            "数学",
            "tA",
            state="ended",
            started_at=at("2026-03-02", "08:02"),
            ended_at=at("2026-03-02", "08:47"),
        )
        lesson(
            "L2",
            "2026-03-04",
            "08:00",
            "A1L",
            ["A2r1"],
            "数学",
            "tA",
            state="ended",
            started_at=at("2026-03-04", "08:10"),
            ended_at=at("2026-03-04", "08:40"),
        )
        lesson(
            "L3",
            "2026-03-10",
            "08:00",
            "A1L",
            ["A2r1", "A2r2"],
            "数学",
            "tA",
            state="ended",
            ended_at=at("2026-03-09", "17:00"),
        )
        lesson("L4", "2026-03-12", "08:00", "A1L", ["A2r2"], "英语", "tA", state="scheduled")
        lesson(
            "L5",
            "2026-03-02",
            "09:00",
            "B1L",
            ["B2r"],
            "语文",
            "tB",
            state="ended",
            started_at=at("2026-03-02", "09:00"),
            ended_at=at("2026-03-02", "09:45"),
        )
        lesson(
            "L6",
            "2026-03-03",
            "10:00",
            "B1L",
            ["A2r1"],
            "语文",
            "tB",
            state="ended",
            started_at=at("2026-03-03", "10:00"),
            ended_at=at("2026-03-03", "10:30"),
        )
        lesson(
            "L7",
            "2026-03-16",
            "08:00",
            "A1L",
            ["A2r1"],
            "数学",
            "tA",
            state="ended",
            started_at=at("2026-03-16", "08:00"),
            ended_at=at("2026-03-16", "08:45"),
        )
        await s.flush()
        rosters = {"L1": ["A2r1", "A2r2"], "L2": ["A2r1"], "L3": ["A2r1", "A2r2"],
                   "L4": ["A2r2"], "L5": ["B2r"], "L6": ["A2r1"], "L7": ["A2r1"]}  # fmt: skip
        await s.execute(
            lesson_receivers.insert(),
            [{"lesson_id": ids[lk], "classroom_id": ids[r], "position": n}
             for lk, rooms in rosters.items() for n, r in enumerate(rooms)],
        )  # fmt: skip

        # The district day of each lesson's scheduled start, as the attendance writer sets it.
        days = {"L1": date(2026, 3, 2), "L2": date(2026, 3, 4), "L5": date(2026, 3, 2),
                "L6": date(2026, 3, 3), "L7": date(2026, 3, 16)}  # fmt: skip

        def seen(lk: str, room: str, school: str, status: str, present_s: float,
                 loss: float | None, samples: int) -> None:  # fmt: skip
            s.add(LessonAttendance(lesson_id=ids[lk], classroom_id=ids[room],
                                   school_id=ids[school], role="receiver",
                                   day=days[lk], status=status, present_s=present_s,
                                   quality_samples=samples, loss_p95=loss))  # fmt: skip

        seen("L1", "A2r1", "A2", "present", 2700, 0.01, 10)
        seen("L1", "A2r2", "A2", "late", 1800, 0.07, 10)
        seen("L2", "A2r1", "A2", "absent", 0, None, 0)
        seen("L5", "B2r", "B2", "present", 2700, None, 0)
        seen("L6", "A2r1", "A2", "present", 1800, 0.12, 5)
        seen("L7", "A2r1", "A2", "present", 2700, 0.01, 5)  # outside the period
        s.add(
            PatrolTalk(
                lesson_id=ids["L1"],
                inspector="insp",
                classroom_name="A2r1",
                started_at=at("2026-03-02", "08:20"),
            )
        )
        s.add(
            EvaluationNote(
                lesson_id=ids["L1"],
                author="insp",
                author_role="patrol",
                at=at("2026-03-02", "08:21"),
                text="好",
            )
        )
        r1 = LibraryRecording(
            lesson_id=ids["L1"],
            directory="r1",
            state="finished",
            started_at=at("2026-03-02", "08:02"),
            score=90.0,
            exemplary_state="exemplary",
        )
        r2 = LibraryRecording(lesson_id=ids["L2"], directory="r2", state="finished",
                              started_at=at("2026-03-04", "08:10"))  # fmt: skip
        s.add_all([r1, r2])
        await s.flush()
        s.add(
            LibraryEvaluation(
                recording_id=r2.id, author="x", author_role="teacher", t_s=1.0, text="好"
            )
        )
        term = Term(name="2026春", first_day=date(2026, 3, 2), last_day=date(2026, 7, 10))
        s.add(term)
        await s.flush()
        slot = TimetableSlot(
            term_id=term.id,
            weekday=3,
            period=2,
            starts=time(9),
            ends=time(9, 45),
            subject="数学",
            lead_classroom_id=ids["A1L"],
            teacher_id=ids["tA"],
        )
        s.add(slot)
        await s.flush()
        s.add(SlotException(slot_id=slot.id, day=date(2026, 3, 11), action="cancel"))  # fmt: skip
    return ids


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[TestClient, dict[str, str], dict[str, str]]
]:  # fmt: skip
    data_dir: Path = tmp_path_factory.mktemp("reports")

    def run(url: str) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
        settings = make_settings(data_dir, url)
        asyncio.run(create_account(settings, "district", PASSWORD, "州管理员"))
        with TestClient(create_app(settings)) as client:
            state = client.app_state["app"]
            ids = client.portal.call(build, state)  # type: ignore[union-attr]
            tokens = {}
            for user in ("district", "adminA", "adminB", "adminA1", "inspA", "tA"):
                response = client.post(
                    "/api/auth/login", json={"username": user, "password": PASSWORD}
                )
                tokens[user] = response.json()["token"]
                client.cookies.clear()
            yield client, ids, tokens

    if request.param == "sqlite":
        yield from run(f"sqlite+aiosqlite:///{(data_dir / 'tongke.db').resolve()}")
    else:
        with fresh_postgres_database() as url:
            yield from run(url)


def get(world: Any, user: str, path: str, **params: Any) -> Any:
    client, _, tokens = world
    return client.get(path, params={**PERIOD, **params},
                      headers={"Authorization": f"Bearer {tokens[user]}"})  # fmt: skip


def pick(figures: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: figures[n] for n in names}


DELIVERED = ("scheduled", "held", "cancelled", "not_held", "on_time", "on_time_rate",
             "receivers", "receivers_per_lesson", "delivered_hours", "patrolled", "patrol_rate",
             "talks", "evaluations", "recordings", "exemplary", "mean_score")  # fmt: skip
RECEIVED = ("expected", "present", "late", "attendance_rate", "received_hours")


def test_district_totals_match_the_hand_count(world: Any) -> None:
    response = get(world, "district", "/api/reports/summary")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["scope"]["level"] == "district"
    assert pick(data["totals"], *DELIVERED) == {
        "scheduled": 7, "held": 4, "cancelled": 2, "not_held": 1, "on_time": 3,
        "on_time_rate": 0.75, "receivers": 5, "receivers_per_lesson": 1.25,
        "delivered_hours": 2.5, "patrolled": 1, "patrol_rate": 0.25, "talks": 1,
        "evaluations": 2, "recordings": 2, "exemplary": 1, "mean_score": 90.0,
    }  # fmt: skip
    assert pick(data["totals"], *RECEIVED) == {
        "expected": 5, "present": 4, "late": 1, "attendance_rate": 0.8, "received_hours": 2.5,
    }  # fmt: skip
    assert data["quality"] == {"good": 1, "fair": 0, "poor": 1, "bad": 1, "unknown": 1}


def test_district_breaks_down_by_county_and_week(world: Any) -> None:
    data = get(world, "district", "/api/reports/summary").json()
    assert data["by"] == "county"
    rows = {r["name"]: r for r in data["rows"]}
    assert pick(rows["甲县"], "scheduled", "held", "cancelled", "on_time", "expected",
                "present", "received_hours") == {
        "scheduled": 5, "held": 2, "cancelled": 2, "on_time": 1, "expected": 4, "present": 3,
        "received_hours": 1.75,
    }  # fmt: skip
    assert pick(rows["乙县"], "scheduled", "held", "on_time", "delivered_hours", "expected",
                "present") == {
        "scheduled": 2, "held": 2, "on_time": 2, "delivered_hours": 1.25, "expected": 1,
        "present": 1,
    }  # fmt: skip
    weeks = {
        w["key"]: pick(w, "scheduled", "held", "cancelled", "not_held") for w in data["weekly"]
    }
    assert weeks == {
        "2026-03-02": {"scheduled": 4, "held": 4, "cancelled": 0, "not_held": 0},
        "2026-03-09": {"scheduled": 3, "held": 0, "cancelled": 2, "not_held": 1},
    }
    subjects = get(world, "district", "/api/reports/summary", by="subject").json()["rows"]
    assert {r["key"]: r["scheduled"] for r in subjects} == {"数学": 4, "英语": 1, "语文": 2}


def test_a_county_admin_sees_his_county_and_its_teaching_points(world: Any) -> None:
    data = get(world, "adminA", "/api/reports/summary").json()
    assert data["scope"] == {"level": "county", "county_id": world[1]["A"], "school_id": None,
                             "name": "甲县"}  # fmt: skip
    assert data["by"] == "school"
    assert pick(data["totals"], "scheduled", "held", "on_time_rate", "receivers_per_lesson",
                "delivered_hours", "patrol_rate", "attendance_rate", "received_hours") == {
        "scheduled": 5, "held": 2, "on_time_rate": 0.5, "receivers_per_lesson": 1.5,
        "delivered_hours": 1.25, "patrol_rate": 0.5, "attendance_rate": 0.75,
        "received_hours": 1.75,
    }  # fmt: skip
    assert data["teaching_points"] == [
        {"school_id": world[1]["A2"], "name": "A2校", "county": "甲县", "hours": 1.75,
         "expected": 4, "present": 3, "attendance_rate": 0.75},
    ]  # fmt: skip
    # The district admin's drill-down into 甲县 gives the same figures.
    drilled = get(world, "district", "/api/reports/summary", county_id=world[1]["A"]).json()
    assert drilled["totals"] == data["totals"]


def test_nothing_of_another_county_reaches_a_county_admin(world: Any) -> None:
    other = get(world, "adminB", "/api/reports/summary", county_id=world[1]["A"])
    assert (other.status_code, other.json()["error"]["code"]) == (404, "county_not_found")
    school = get(world, "adminB", "/api/reports/lessons", school_id=world[1]["A1"])
    assert (school.status_code, school.json()["error"]["code"]) == (404, "school_not_found")
    # A school admin naming his own county still gets only his school's lessons.
    mine = get(world, "adminA1", "/api/reports/summary", county_id=world[1]["A"]).json()
    assert mine["totals"]["scheduled"] == 5 and mine["totals"]["expected"] == 0
    assert get(world, "tA", "/api/reports/summary").status_code == 403


def test_drill_down_lists_a_schools_lessons_with_their_figures(world: Any) -> None:
    data = get(world, "inspA", "/api/reports/lessons", school_id=world[1]["A1"]).json()
    lessons = {row["title"]: row for row in data["lessons"]}
    assert list(lessons) == ["L1", "L2", "L3", "L4"]
    assert pick(lessons["L1"], "receivers", "expected", "present", "talks", "on_time") == {
        "receivers": 2, "expected": 2, "present": 2, "talks": 1, "on_time": True,
    }  # fmt: skip
    assert lessons["L2"]["on_time"] is False and lessons["L4"]["on_time"] is None
    assert data["truncated"] is False


def test_exports_carry_the_same_figures_under_chinese_headers(world: Any) -> None:
    summary = get(world, "district", "/api/reports/summary").json()
    response = get(world, "district", "/api/reports/summary.xlsx")
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["总览", "按县市", "周趋势", "教学点"]
    sheet = book["按县市"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["县/市", "排课节数", "开课节数", "取消节数"]
    table = {row[0]: dict(zip(header, row, strict=True))
             for row in sheet.iter_rows(min_row=2, values_only=True)}  # fmt: skip
    assert table["合计"]["排课节数"] == summary["totals"]["scheduled"] == 7
    assert table["甲县"]["出勤率"] == 0.75
    assert table["乙县"]["授课时长(小时)"] == 1.25
    csv = get(world, "district", "/api/reports/summary.csv")
    text = csv.content.decode("utf-8-sig").splitlines()
    assert text[0].startswith("县/市,排课节数,开课节数")
    assert text[-1].startswith("合计,7,4,2,1,3,0.75")

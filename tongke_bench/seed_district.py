"""A synthetic district for the 督导 reports: ``python -m tongke_bench.seed_district``.

Counties of a 州, central schools that lead (主讲) and teaching points that receive, one
term's weekly timetable and every lesson it generates, each lesson's receiving classrooms,
and for the lessons already over: how they went (held, late, cancelled, not held), one
attendance row per classroom (lesson_attendance, with loss/jitter/RTT), patrol talkbacks,
live notes and library recordings (some exemplary). Random but seeded: the same arguments
give the same district. Rows go in with bulk inserts (COPY on PostgreSQL, executemany on
SQLite), so 400 schools, 2,000 classrooms and ~100,000 lessons take a minute, not an hour.

Accounts (password --password): ``district-admin``, ``county-admin-<n>`` and
``inspector-<n>`` per county (n from 1), one teacher per lead classroom.
docs/benchmarks.md "督导 reports" uses it. A bench harness, not a product API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time as clock
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import open_database
from server.db.attendance_models import LessonAttendance
from server.db.calendar_models import Term, TimetableSlot, slot_receivers
from server.db.models import (
    Account,
    Classroom,
    County,
    EvaluationNote,
    Lesson,
    LibraryRecording,
    PatrolTalk,
    School,
    lesson_receivers,
)
from server.passwords import hash_password
from server.settings import Settings

COUNTY_NAMES = (
    "凯里市",
    "丹寨县",
    "麻江县",
    "雷山县",
    "台江县",
    "剑河县",
    "黄平县",
    "施秉县",
    "三穗县",
    "镇远县",
    "岑巩县",
    "天柱县",
    "锦屏县",
    "黎平县",
    "从江县",
    "榕江县",
)
SUBJECTS = ("语文", "数学", "英语", "音乐", "美术", "科学", "体育", "道德与法治")
GRADES = ("一年级", "二年级", "三年级", "四年级", "五年级", "六年级")
# 第几节 -> (start, end): a rural primary school's day.
PERIODS = (
    (time(8, 30), time(9, 10)),
    (time(9, 20), time(10, 0)),
    (time(10, 20), time(11, 0)),
    (time(14, 0), time(14, 40)),
    (time(14, 50), time(15, 30)),
    (time(15, 40), time(16, 20)),
)
CHUNK = 5000


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Plan:
    counties: int
    schools: int
    classrooms: int
    first_day: date
    last_day: date
    receivers_per_lesson: int
    slots_per_lead: int
    zone: ZoneInfo
    now: datetime
    rng: random.Random
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, **row: Any) -> None:
        self.rows.setdefault(table, []).append(row)


def school_days(first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def at(day: date, t: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, t, zone).astimezone(UTC)


def plan_places(plan: Plan, password_hash: str) -> tuple[list[list[str]], list[list[str]]]:
    """Counties, schools, classrooms and accounts. Returns, per county, its lead classrooms
    and its receiving classrooms."""
    rng, created = plan.rng, plan.now
    leads: list[list[str]] = [[] for _ in range(plan.counties)]
    receiving: list[list[str]] = [[] for _ in range(plan.counties)]

    def account(username: str, name: str, role: str, **scope: str | None) -> str:
        account_id = new_id()
        plan.add(
            "accounts",
            id=account_id,
            username=username,
            display_name=name,
            role=role,
            password_hash=password_hash,
            school_id=scope.get("school_id"),
            county_id=scope.get("county_id"),
            active=True,
            created_at=created,
        )
        return account_id

    account("district-admin", "州教育局", "admin")
    county_ids = []
    for c in range(plan.counties):
        county_id = new_id()
        county_ids.append(county_id)
        name = COUNTY_NAMES[c] if c < len(COUNTY_NAMES) else f"第{c + 1}县"
        plan.add("counties", id=county_id, name=name, code=f"5226{c + 1:02d}", created_at=created)
        account(f"county-admin-{c + 1}", f"{name}教育局", "admin", county_id=county_id)
        account(f"inspector-{c + 1}", f"{name}督学", "inspector", county_id=county_id)
    # One school in five is a central school (中心校) that leads; the rest receive.
    per_school = max(plan.classrooms // plan.schools, 1)
    for s in range(plan.schools):
        c = s % plan.counties
        central = s % 5 < 1
        kind = "central" if central else ("teaching_point" if s % 5 < 4 else "primary")
        school_id = new_id()
        place = COUNTY_NAMES[c][:-1] if c < len(COUNTY_NAMES) else f"第{c + 1}"
        label = "中心校" if central else ("教学点" if kind == "teaching_point" else "小学")
        plan.add(
            "schools",
            id=school_id,
            name=f"{place}第{s // plan.counties + 1}{label}",
            kind=kind,
            county_id=county_ids[c],
            created_at=created,
        )
        for r in range(per_school):
            room_id = new_id()
            plan.add(
                "classrooms",
                id=room_id,
                school_id=school_id,
                name=f"{r + 1}号教室",
                kind="lead" if central else "receiving",
                created_at=created,
            )
            if central:
                teacher = account(
                    f"t-{room_id[:10]}",
                    f"教师{rng.randint(100, 999)}",
                    "teacher",
                    school_id=school_id,
                )
                leads[c].append(f"{room_id}:{teacher}:{school_id}")
            else:
                receiving[c].append(f"{room_id}:{school_id}")
    return leads, receiving


def plan_term(plan: Plan, leads: list[list[str]], receiving: list[list[str]]) -> None:
    """The term, its weekly slots (no classroom in two places at once) and their lessons."""
    rng = plan.rng
    term_id = new_id()
    plan.add(
        "terms",
        id=term_id,
        name=f"{plan.first_day.year}学期（模拟）",
        first_day=plan.first_day,
        last_day=plan.last_day,
        created_at=plan.now,
    )
    times = [(weekday, period) for weekday in range(1, 6) for period in range(len(PERIODS))]
    days = school_days(plan.first_day, plan.last_day)
    by_weekday: dict[int, list[date]] = {}
    for day in days:
        by_weekday.setdefault(day.isoweekday(), []).append(day)
    for c, county_leads in enumerate(leads):
        free = {slot: list(receiving[c]) for slot in times}
        for lead in county_leads:
            room, teacher, _school = lead.split(":")
            for weekday, period in rng.sample(times, min(plan.slots_per_lead, len(times))):
                pool = free[(weekday, period)]
                if len(pool) < plan.receivers_per_lesson:
                    continue
                rng.shuffle(pool)
                rooms = [pool.pop().split(":") for _ in range(plan.receivers_per_lesson)]
                slot_id = new_id()
                subject, grade = rng.choice(SUBJECTS), rng.choice(GRADES)
                starts, ends = PERIODS[period]
                plan.add(
                    "timetable_slots",
                    id=slot_id,
                    term_id=term_id,
                    weekday=weekday,
                    period=period + 1,
                    starts=starts,
                    ends=ends,
                    title=f"{grade}{subject}",
                    subject=subject,
                    grade=grade,
                    lead_classroom_id=room,
                    teacher_id=teacher,
                    recording_policy="teacher",
                    start_mode="click",
                    created_at=plan.now,
                )
                for position, (receiver, _) in enumerate(rooms):
                    plan.add(
                        "slot_receivers", slot_id=slot_id, classroom_id=receiver, position=position
                    )
                for day in by_weekday.get(weekday, []):
                    plan_lesson(
                        plan, slot_id, day, starts, ends, room, teacher, subject, grade, rooms
                    )


def plan_lesson(
    plan: Plan,
    slot_id: str,
    day: date,
    starts: time,
    ends: time,
    room: str,
    teacher: str,
    subject: str,
    grade: str,
    rooms: Sequence[Sequence[str]],
) -> None:
    """One generated lesson; if it is over, how it went and who came."""
    rng, zone = plan.rng, plan.zone
    lesson_id = new_id()
    start, end = at(day, starts, zone), at(day, ends, zone)
    state, started, ended = "scheduled", None, None
    if end < plan.now:
        fate = rng.random()
        if fate < 0.03:  # cancelled before it started
            state, ended = "ended", start
        elif fate > 0.985:  # never started (still scheduled after its end)
            pass
        else:
            late = rng.random() < 0.08
            started = start + timedelta(
                seconds=rng.randint(360, 1200) if late else rng.randint(-120, 200)
            )
            ended = end + timedelta(seconds=rng.randint(-120, 180))
            state = "ended"
    plan.add(
        "lessons",
        id=lesson_id,
        title=f"{grade}{subject}",
        teacher_id=teacher,
        lead_classroom_id=room,
        scheduled_start=start,
        scheduled_end=end,
        state=state,
        started_at=started,
        ended_at=ended,
        recording=False,
        stage="小学",
        subject=subject,
        grade=grade,
        textbook_version="人教版",
        volume="上册",
        unit="",
        slot_id=slot_id,
        slot_day=day,
        recording_policy="teacher",
        start_mode="click",
        created_at=plan.now,
        updated_at=plan.now,
    )
    for position, (receiver, _school) in enumerate(rooms):
        plan.add("lesson_receivers", lesson_id=lesson_id, classroom_id=receiver, position=position)
    if started is None or ended is None:
        return
    live_s = (ended - started).total_seconds()
    for receiver, school in rooms:
        attendance(plan, lesson_id, receiver, school, day, started, live_s)
    if rng.random() < 0.18:
        plan.add(
            "patrol_talks",
            id=new_id(),
            lesson_id=lesson_id,
            account_id=None,
            inspector="督学",
            classroom_id=rooms[0][0],
            classroom_name="1号教室",
            started_at=started + timedelta(minutes=10),
            offset_s=600.0,
            duration_s=40.0,
        )
    if rng.random() < 0.12:
        plan.add(
            "evaluation_notes",
            id=new_id(),
            lesson_id=lesson_id,
            account_id=None,
            author="督学",
            author_role="patrol",
            at=started + timedelta(minutes=20),
            offset_s=1200.0,
            text="互动充分，接收端学生参与积极。",
            scores={},
        )
    if rng.random() < 0.06:
        exemplary = rng.random() < 0.15
        plan.add(
            "library_recordings",
            id=new_id(),
            lesson_id=lesson_id,
            directory=f"seed/{lesson_id}",
            state="finished",
            interrupted=False,
            title=f"{grade}{subject}",
            stage="小学",
            subject=subject,
            grade=grade,
            textbook_version="人教版",
            volume="上册",
            unit="",
            teacher="",
            teacher_id=teacher,
            school="",
            district="",
            started_at=started,
            duration_s=live_s,
            size_bytes=0,
            tracks=[],
            rendition_state="done",
            rendition_progress=1.0,
            rendition_files={},
            score=round(rng.uniform(70, 96), 1),
            exemplary_state="exemplary" if exemplary else "none",
            created_at=ended,
        )


def attendance(
    plan: Plan, lesson_id: str, room: str, school: str, day: date, started: datetime, live_s: float
) -> None:
    rng = plan.rng
    fate = rng.random()
    if fate < 0.05:
        status, late_s, present_s = "absent", None, 0.0
    elif fate < 0.13:
        status, late_s = "late", float(rng.randint(150, 900))
        present_s = max(live_s - late_s, 0.0)
    else:
        status, late_s, present_s = "present", 0.0, live_s * rng.uniform(0.93, 1.0)
    came = status != "absent"
    # Most links are good; a tail of poor rural links.
    loss95 = min(rng.lognormvariate(-4.6, 1.0), 0.4) if came else None
    plan.add(
        "lesson_attendance",
        lesson_id=lesson_id,
        classroom_id=room,
        school_id=school,
        role="receiver",
        day=day,
        status=status,
        joined_at=started + timedelta(seconds=late_s or 0) if came else None,
        left_at=started + timedelta(seconds=live_s) if came else None,
        late_s=late_s,
        present_s=present_s,
        joins=1 if came else 0,
        periods_lost=rng.choice((0, 0, 0, 1)) if came else 0,
        stage_s=0.0,
        quality_samples=int(present_s / 2) if came else 0,
        loss_p50=loss95 / 3 if loss95 is not None else None,
        loss_p95=loss95,
        jitter_p50_ms=rng.uniform(5, 20) if came else None,
        jitter_p95_ms=rng.uniform(20, 60) if came else None,
        rtt_p50_ms=rng.uniform(30, 90) if came else None,
        rtt_p95_ms=rng.uniform(90, 250) if came else None,
        updated_at=plan.now,
    )


TABLES: tuple[tuple[str, Table], ...] = (
    ("counties", County.__table__),  # type: ignore[arg-type]
    ("schools", School.__table__),  # type: ignore[arg-type]
    ("classrooms", Classroom.__table__),  # type: ignore[arg-type]
    ("accounts", Account.__table__),  # type: ignore[arg-type]
    ("terms", Term.__table__),  # type: ignore[arg-type]
    ("timetable_slots", TimetableSlot.__table__),  # type: ignore[arg-type]
    ("slot_receivers", slot_receivers),
    ("lessons", Lesson.__table__),  # type: ignore[arg-type]
    ("lesson_receivers", lesson_receivers),
    ("lesson_attendance", LessonAttendance.__table__),  # type: ignore[arg-type]
    ("patrol_talks", PatrolTalk.__table__),  # type: ignore[arg-type]
    ("evaluation_notes", EvaluationNote.__table__),  # type: ignore[arg-type]
    ("library_recordings", LibraryRecording.__table__),  # type: ignore[arg-type]
)


async def _copy(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY through asyncpg: every column in table order, values as Python gives
    them (UtcDateTime columns are already aware UTC datetimes; JSON as text)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    columns = [c.name for c in table.columns]
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    # COPY skips the columns' Python defaults (new columns of later migrations): apply them.
    defaults = {c.name: c.default for c in table.columns if c.default is not None}

    def value(row: dict[str, Any], name: str) -> Any:
        if name in row:
            v = row[name]
        elif name in defaults:
            d = defaults[name]
            v = d.arg(None) if d.is_callable else d.arg  # type: ignore[attr-defined]
        else:
            return None
        return json.dumps(v) if name in json_cols else v

    records = [tuple(value(r, c) for c in columns) for r in rows]
    await driver.copy_records_to_table(table.name, records=records, columns=columns)  # type: ignore[union-attr]


async def write(conn: AsyncConnection, plan: Plan, log: Any) -> dict[str, int]:
    counts = {}
    postgres = conn.dialect.name == "postgresql"
    for name, table in TABLES:
        rows = plan.rows.get(name, [])
        counts[name] = len(rows)
        began = clock.perf_counter()
        for i in range(0, len(rows), CHUNK if not postgres else 50_000):
            chunk = rows[i : i + (CHUNK if not postgres else 50_000)]
            if postgres:
                await _copy(conn, table, chunk)
            else:
                await conn.execute(table.insert(), chunk)
        if rows:
            print(f"  {name}: {len(rows):,} rows in {clock.perf_counter() - began:.1f} s", file=log)
    return counts


async def seed(
    settings: Settings,
    *,
    counties: int = 8,
    schools: int = 400,
    classrooms: int = 2000,
    first_day: date = date(2026, 3, 2),
    last_day: date = date(2026, 7, 10),
    receivers_per_lesson: int = 4,
    slots_per_lead: int = 14,
    password: str = "tongke-demo",
    now: datetime | None = None,
    seed_value: int = 16,
    log: Any = sys.stdout,
) -> dict[str, int]:
    """Seeds an empty database (refuses one that has schools) and returns rows per table."""
    plan = Plan(
        counties,
        schools,
        classrooms,
        first_day,
        last_day,
        receivers_per_lesson,
        slots_per_lead,
        settings.zone,
        now or datetime.now(UTC),
        random.Random(seed_value),
    )
    password_hash = await asyncio.to_thread(hash_password, password)
    leads, receiving = plan_places(plan, password_hash)
    plan_term(plan, leads, receiving)
    async with open_database(settings) as db:
        async with db.engine.begin() as conn:
            if await conn.scalar(select(func.count()).select_from(School)):
                raise SystemExit("the database already has schools; seed an empty one")
            counts = await write(conn, plan, log)
        if db.engine.dialect.name == "postgresql":
            # The roster trigger (migration 0010) rewrote each lesson once per receiver, and
            # the report triggers (0011) each (school, day) mark once per row written: VACUUM
            # clears those row versions, as autovacuum would in a running district.
            async with db.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in [*(name for name, _ in TABLES), "report_marks"]:
                    await conn.exec_driver_sql(f"VACUUM ANALYZE {name}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tongke_bench.seed_district", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default="", help="empty: SQLite under --data-dir")
    parser.add_argument("--data-dir", default="data-district", type=Path)
    parser.add_argument("--counties", type=int, default=8)
    parser.add_argument("--schools", type=int, default=400)
    parser.add_argument("--classrooms", type=int, default=2000)
    parser.add_argument("--term", default="2026-03-02:2026-07-10", help="FIRST:LAST day")
    parser.add_argument("--receivers", type=int, default=4, help="receiving classrooms a lesson")
    parser.add_argument(
        "--slots-per-lead", type=int, default=14, help="timetable slots a week per lead classroom"
    )
    parser.add_argument("--password", default="tongke-demo")
    args = parser.parse_args(argv)
    first, _, last = args.term.partition(":")
    settings = Settings(data_dir=args.data_dir, database_url=args.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    began = clock.perf_counter()
    counts = asyncio.run(
        seed(
            settings,
            counties=args.counties,
            schools=args.schools,
            classrooms=args.classrooms,
            first_day=date.fromisoformat(first),
            last_day=date.fromisoformat(last),
            receivers_per_lesson=args.receivers,
            slots_per_lead=args.slots_per_lead,
            password=args.password,
        )
    )
    print(
        f"seeded in {clock.perf_counter() - began:.1f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

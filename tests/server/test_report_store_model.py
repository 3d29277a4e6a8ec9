"""Model-based test of the report's stored weeks (server/reports/stored_weeks.py).

Hypothesis writes what report figures count, in any order and at any hour (a UTC day is not a
district day): lessons made, held, moved across weeks and deleted; talkbacks, notes,
recordings, scores and replay evaluations; attendance; timetable cancellations; a classroom
moving to another school. Now and then the store is refreshed for a period, and time passes.
After every step, on SQLite and PostgreSQL, for a period of whole weeks and one whose edges
cut weeks: the (school, week) figures the report reads (stored where they hold, live
elsewhere) equal the figures computed live from the tables alone.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from shared_support import fresh_postgres_database
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import make_engine
from server.db.attendance_models import LessonAttendance
from server.db.calendar_models import SlotException, Term, TimetableSlot
from server.db.migrate import upgrade
from server.db.models import (
    Account,
    Classroom,
    EvaluationNote,
    Lesson,
    LibraryEvaluation,
    LibraryRecording,
    PatrolTalk,
    School,
    lesson_receivers,
)
from server.reports.periods import PeriodKind, make_period
from server.reports.queries import ReportQuery
from server.reports.stored_weeks import live_rows, refresh, school_week_rows

ZONE = ZoneInfo("Asia/Shanghai")
GRACE_S = 300.0
DAYS = 28  # four weeks of lessons
_years = itertools.count(2200)  # each example lives in a year of its own
_directories = itertools.count()


class Db:
    """The database every example of one run writes to, and the loop its engine lives in."""

    loop: asyncio.AbstractEventLoop
    sessions: async_sessionmaker[AsyncSession]


def _pair_sums(rows: list[Any]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for school, week, vector in rows:
        current = out.setdefault((school, week), [0.0] * len(vector))
        out[(school, week)] = [round(a + float(b), 6) for a, b in zip(current, vector, strict=True)]
    return {k: v for k, v in out.items() if any(v)}


class StoreMachine(RuleBasedStateMachine):
    db: Db

    def run(self, coroutine: Any) -> Any:
        return self.db.loop.run_until_complete(coroutine)

    async def write(self, *items: Any, statement: Any = None) -> None:
        async with self.db.sessions.begin() as session:
            session.add_all(items)
            if statement is not None:
                await session.execute(statement)

    @initialize()
    def world(self) -> None:
        year = next(_years)
        first = date(year, 3, 1)
        self.monday = first + timedelta(days=(7 - first.weekday()) % 7)
        self.now = datetime.combine(self.monday + timedelta(days=10), time(12), UTC)
        self.lessons: list[str] = []
        self.recordings: list[str] = []
        self.cancelled: set[int] = set()
        self.run(self._world(year))

    async def _world(self, year: int) -> None:
        async with self.db.sessions.begin() as s:
            schools = [School(name=f"{year}-{n}", kind=kind) for n, kind in
                       enumerate(("central", "central", "teaching_point"))]  # fmt: skip
            s.add_all(schools)
            await s.flush()
            self.schools = [school.id for school in schools]
            rooms = [
                Classroom(school_id=self.schools[n], name=f"{year}-{i}")
                for i, n in enumerate((0, 1, 2, 2))
            ]
            teacher = Account(username=f"t{year}", display_name="t", role="teacher",
                              password_hash="x")  # fmt: skip
            term = Term(name=f"{year}", first_day=self.monday,
                        last_day=self.monday + timedelta(days=DAYS))  # fmt: skip
            s.add_all([*rooms, teacher, term])
            await s.flush()
            self.rooms = [room.id for room in rooms]
            self.teacher = teacher.id
            slot = TimetableSlot(term_id=term.id, weekday=1, period=1, starts=time(8),
                                 ends=time(8, 45), lead_classroom_id=self.rooms[0],
                                 teacher_id=teacher.id)  # fmt: skip
            s.add(slot)
            await s.flush()
            self.slot = slot.id

    # --- writes -------------------------------------------------------------------------

    @rule(day=st.integers(0, DAYS - 1), minute=st.integers(0, 24 * 60 - 1),
          lead=st.integers(0, 1), receivers=st.sets(st.integers(2, 3)),
          outcome=st.sampled_from(["scheduled", "held", "cancelled"]))  # fmt: skip
    def add_lesson(
        self, day: int, minute: int, lead: int, receivers: set[int], outcome: str
    ) -> None:
        start = datetime.combine(self.monday, time(), UTC) + timedelta(days=day, minutes=minute)
        lesson = Lesson(
            title="x",
            teacher_id=self.teacher,
            lead_classroom_id=self.rooms[lead],
            scheduled_start=start,
            scheduled_end=start + timedelta(minutes=45),
        )
        if outcome == "held":
            lesson.state, lesson.started_at = "ended", start + timedelta(minutes=minute % 11)
            lesson.ended_at = lesson.started_at + timedelta(minutes=40)
        elif outcome == "cancelled":
            lesson.state, lesson.ended_at = "ended", start
        self.run(self._add_lesson(lesson, sorted(receivers)))

    async def _add_lesson(self, lesson: Lesson, receivers: list[int]) -> None:
        async with self.db.sessions.begin() as s:
            s.add(lesson)
            await s.flush()
            if receivers:
                await s.execute(lesson_receivers.insert(), [
                    {"lesson_id": lesson.id, "classroom_id": self.rooms[r], "position": n}
                    for n, r in enumerate(receivers)])  # fmt: skip
        self.lessons.append(lesson.id)

    @precondition(lambda self: self.lessons)
    @rule(data=st.data(), late_min=st.integers(0, 20))
    def hold(self, data: st.DataObject, late_min: int) -> None:
        lesson = data.draw(st.sampled_from(self.lessons))
        self.run(self._hold(lesson, late_min))

    async def _hold(self, lesson_id: str, late_min: int) -> None:
        async with self.db.sessions.begin() as s:
            lesson = await s.get_one(Lesson, lesson_id)
            lesson.state = "ended"
            lesson.started_at = lesson.scheduled_start + timedelta(minutes=late_min)
            lesson.ended_at = lesson.started_at + timedelta(minutes=30)

    @precondition(lambda self: self.lessons)
    @rule(data=st.data(), days=st.integers(-8, 8), hours=st.integers(-12, 12))
    def move(self, data: st.DataObject, days: int, hours: int) -> None:
        lesson = data.draw(st.sampled_from(self.lessons))
        self.run(self._move(lesson, timedelta(days=days, hours=hours)))

    async def _move(self, lesson_id: str, shift: timedelta) -> None:
        async with self.db.sessions.begin() as s:
            lesson = await s.get_one(Lesson, lesson_id)
            lesson.scheduled_start += shift
            lesson.scheduled_end += shift

    @precondition(lambda self: self.lessons)
    @rule(data=st.data())
    def delete_lesson(self, data: st.DataObject) -> None:
        lesson = data.draw(st.sampled_from(self.lessons))
        self.lessons.remove(lesson)
        self.run(self._delete(lesson))

    async def _delete(self, lesson_id: str) -> None:
        async with self.db.sessions.begin() as s:
            ids = select(LibraryRecording.id).where(LibraryRecording.lesson_id == lesson_id)
            self.recordings = [
                r for r in self.recordings if r not in set((await s.execute(ids)).scalars())
            ]
            await s.execute(delete(Lesson).where(Lesson.id == lesson_id))

    @precondition(lambda self: self.lessons)
    @rule(data=st.data(), kind=st.sampled_from(["talk", "patrol note", "note"]))
    def remark(self, data: st.DataObject, kind: str) -> None:
        lesson = data.draw(st.sampled_from(self.lessons))
        at = datetime.now(UTC)
        item: Any = (
            PatrolTalk(lesson_id=lesson, inspector="i", classroom_name="r", started_at=at)
            if kind == "talk"
            else EvaluationNote(lesson_id=lesson, author="a", at=at, text="好",
                                author_role="patrol" if kind == "patrol note" else "teacher")
        )  # fmt: skip
        self.run(self.write(item))

    @precondition(lambda self: self.lessons)
    @rule(data=st.data(), exemplary=st.booleans(), score=st.none() | st.floats(0, 100))
    def record(self, data: st.DataObject, exemplary: bool, score: float | None) -> None:
        lesson = data.draw(st.sampled_from(self.lessons))
        recording = LibraryRecording(
            lesson_id=lesson,
            directory=f"r{next(_directories)}",
            state="finished",
            started_at=datetime.now(UTC),
            score=score,
            exemplary_state="exemplary" if exemplary else "none",
        )
        self.run(self.write(recording))
        self.recordings.append(recording.id)

    @precondition(lambda self: self.recordings)
    @rule(data=st.data(), score=st.none() | st.floats(0, 100), replay=st.booleans())
    def evaluate(self, data: st.DataObject, score: float | None, replay: bool) -> None:
        recording = data.draw(st.sampled_from(self.recordings))
        if replay:
            replayed = LibraryEvaluation(
                recording_id=recording, author="a", author_role="teacher", t_s=1.0, text="好"
            )
            self.run(self.write(replayed))
        else:
            self.run(self.write(statement=update(LibraryRecording).where(
                LibraryRecording.id == recording).values(score=score)))  # fmt: skip

    @precondition(lambda self: self.lessons)
    @rule(data=st.data(), room=st.integers(2, 3),
          status=st.sampled_from(["pending", "present", "late", "absent"]),
          present_min=st.integers(0, 45), loss=st.none() | st.floats(0, 0.3))  # fmt: skip
    def attend(self, data: st.DataObject, room: int, status: str, present_min: int,
               loss: float | None) -> None:  # fmt: skip
        lesson = data.draw(st.sampled_from(self.lessons))
        self.run(self._attend(lesson, room, status, present_min * 60.0, loss))

    async def _attend(self, lesson_id: str, room: int, status: str, present_s: float,
                      loss: float | None) -> None:  # fmt: skip
        async with self.db.sessions.begin() as s:
            lesson = await s.get_one(Lesson, lesson_id)
            row = await s.get(LessonAttendance, (lesson_id, self.rooms[room]))
            if row is None:
                row = LessonAttendance(
                    lesson_id=lesson_id,
                    classroom_id=self.rooms[room],
                    school_id=self.schools[2],
                    role="receiver",
                    day=lesson.scheduled_start.astimezone(ZONE).date(),
                )
                s.add(row)
            row.status, row.present_s = status, present_s
            row.quality_samples, row.loss_p95 = (0, None) if loss is None else (5, loss)

    @rule(week=st.integers(0, DAYS // 7 - 1))
    def cancel_in_timetable(self, week: int) -> None:
        day = self.monday + timedelta(days=7 * week + 1)
        if week in self.cancelled:
            self.cancelled.discard(week)
            statement = delete(SlotException).where(SlotException.slot_id == self.slot,
                                                    SlotException.day == day)  # fmt: skip
            self.run(self.write(statement=statement))
        else:
            self.cancelled.add(week)
            self.run(self.write(SlotException(slot_id=self.slot, day=day, action="cancel")))

    @rule(room=st.integers(0, 1), school=st.integers(0, 1))
    def move_classroom(self, room: int, school: int) -> None:
        statement = update(Classroom).where(Classroom.id == self.rooms[room]).values(
            school_id=self.schools[school])  # fmt: skip
        self.run(self.write(statement=statement))

    # --- the store ----------------------------------------------------------------------

    def query(self, cut: bool, scope: bool = True) -> ReportQuery:
        first = self.monday + timedelta(days=3 if cut else 0)
        last = self.monday + timedelta(days=DAYS - (3 if cut else 1))
        period = make_period(PeriodKind.CUSTOM, first, last, ZONE)
        mine = select(School.id).where(School.id.in_(self.schools)) if scope else None
        return ReportQuery(mine, period, self.now, GRACE_S, period.weeks(ZONE))

    @rule(cut=st.booleans())
    def refresh_store(self, cut: bool) -> None:
        self.run(refresh(self.db.sessions, self.query(cut, scope=False)))

    @rule(days=st.integers(1, 10))
    def time_passes(self, days: int) -> None:
        self.now += timedelta(days=days)

    @invariant()
    def stored_figures_are_the_live_ones(self) -> None:
        for cut in (False, True):
            q = self.query(cut)
            stored, live = self.run(self._both(q))
            assert stored == live, f"period cut={cut}, now={self.now}"

    async def _both(self, q: ReportQuery) -> tuple[Any, Any]:
        async with self.db.sessions.begin() as s:
            return _pair_sums(await school_week_rows(s, q)), _pair_sums(await live_rows(s, q))


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{(tmp_path / 'reports.db').resolve()}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_stored_weeks_always_equal_the_live_figures(kind: str, tmp_path: Path) -> None:
    with _database(kind, tmp_path) as url:
        upgrade(url)
        db = Db()
        db.loop = asyncio.new_event_loop()
        engine = make_engine(url)
        db.sessions = async_sessionmaker(engine, expire_on_commit=False)
        machine = type("Machine", (StoreMachine,), {"db": db})
        try:
            run_state_machine_as_test(machine, settings=settings(
                max_examples=10, stateful_step_count=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow]))  # fmt: skip
        finally:
            db.loop.run_until_complete(engine.dispose())
            db.loop.close()

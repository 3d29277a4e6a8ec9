"""The 督导 report's figures for a scope and a period, grouped, in a few SQL aggregates.

Two sides, because a lesson has two kinds of place:
- delivered: lessons whose **lead** classroom lies in the scope, by scheduled start in the
  period: scheduled, held, cancelled, not held, on time, receiving classrooms, hours
  delivered, patrol coverage, talkbacks, evaluations, recordings, exemplary lessons;
- received: the attendance rows (lesson_attendance) of **receiving** classrooms in the
  scope: expected, present, late, hours received, connection quality.
Timetable cancellations (slot exceptions `cancel` on a day of the period) count as
cancelled lessons of their slot's lead classroom. Every aggregate is one GROUP BY per side;
the groups (county, school, subject, teacher, week) are merged by key in Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.db.attendance_models import AttendanceStatus, LessonAttendance
from server.db.calendar_models import ExceptionAction, SlotException, TimetableSlot
from server.db.models import (
    Account,
    Classroom,
    County,
    EvaluationNote,
    ExemplaryState,
    Lesson,
    LessonStatus,
    LibraryEvaluation,
    LibraryRecording,
    PatrolTalk,
    School,
    SchoolKind,
)
from server.reports.periods import Period
from server.reports.sql import epoch_s

GROUPS = ("county", "school", "subject", "teacher")

# Connection quality of a receiving classroom over a lesson, by its 95th-percentile loss.
QUALITY_BANDS = (("good", 0.02), ("fair", 0.05), ("poor", 0.10))  # else "bad"


@dataclass
class Figures:
    """One row of the report (the totals, a county, a school, a subject, a teacher, a week)."""

    key: str | None = None
    name: str = ""
    # delivered (lead classroom in scope)
    scheduled: int = 0  # lessons in the period, cancelled ones included
    held: int = 0  # went live
    cancelled: int = 0  # ended without going live, or cancelled in the timetable
    not_held: int = 0  # their time is over and they never went live
    on_time: int = 0  # went live no later than on_time_grace_s after the scheduled start
    receivers: int = 0  # receiving classrooms over the lessons held
    delivered_hours: float = 0.0  # live time of the lessons held and ended
    patrolled: int = 0  # lessons held with an inspector's note or talkback
    talks: int = 0  # talkbacks (实时音频互动反馈)
    evaluations: int = 0  # live notes and replay evaluations
    scored: int = 0  # recordings with a rubric score
    score_sum: float = 0.0
    recordings: int = 0
    exemplary: int = 0
    # received (receiving classroom in scope)
    expected: int = 0  # receiving classrooms' attendance rows of ended lessons
    present: int = 0  # present or late
    late: int = 0
    received_hours: float = 0.0
    quality_good: int = 0
    quality_fair: int = 0
    quality_poor: int = 0
    quality_bad: int = 0
    quality_unknown: int = 0

    def out(self) -> dict[str, Any]:
        data = asdict(self)
        data["on_time_rate"] = _rate(self.on_time, self.held)
        data["receivers_per_lesson"] = _rate(self.receivers, self.held)
        data["attendance_rate"] = _rate(self.present, self.expected)
        data["patrol_rate"] = _rate(self.patrolled, self.held)
        data["mean_score"] = round(self.score_sum / self.scored, 2) if self.scored else None
        data["delivered_hours"] = round(self.delivered_hours, 2)
        data["received_hours"] = round(self.received_hours, 2)
        del data["score_sum"]
        return data

    def add(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name != "key" and value is not None:
                # PostgreSQL sums to NUMERIC (Decimal): keep each figure's own type.
                current = getattr(self, name)
                setattr(self, name, current + type(current)(value))


FIGURE_NAMES = frozenset(f.name for f in fields(Figures))


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _sum(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What to report on: the schools in scope (None: all), the period, the settings."""

    school_ids: Select[tuple[str]] | None
    period: Period
    now: datetime
    on_time_grace_s: float
    weeks: list[tuple[date, datetime, datetime]]

    def in_scope(self, column: Any) -> ColumnElement[bool]:
        return column.in_(self.school_ids) if self.school_ids is not None else literal(True)


def week_key(column: Any, weeks: list[tuple[date, datetime, datetime]]) -> Any:
    """The Monday (ISO text) of the week an instant falls in, as a CASE over the weeks."""
    if not weeks:
        return null()
    return case(*((column < end, literal(monday.isoformat())) for monday, _, end in weeks))


def day_week_key(column: Any, weeks: list[tuple[date, datetime, datetime]]) -> Any:
    """The same for a DATE column (a slot exception's day)."""
    if not weeks:
        return null()
    return case(
        *(
            (column <= monday + timedelta(days=6), literal(monday.isoformat()))
            for monday, _, _ in weeks
        )
    )


def _delivered_key(by: str, q: ReportQuery, school: Any, room: Any) -> Any:
    if by == "school_week":
        return None  # two columns: see _keys
    return {
        "total": literal("total"),
        "county": school.county_id,
        "school": room.school_id,
        "subject": Lesson.subject,
        "teacher": Lesson.teacher_id,
        "week": week_key(Lesson.scheduled_start, q.weeks),
    }[by]


def _keys(by: str, column: Any, school_column: Any, week: Any) -> list[Any]:
    """The GROUP BY columns of `by`: one, or the school and the week for the rollup."""
    if by == "school_week":
        return [school_column.label("key"), week.label("week")]
    return [column.label("key")]


def _lesson_extras(q: ReportQuery) -> Any:
    """Per lesson of the period that has any: talkbacks, live notes, patrol marks,
    recordings, exemplary ones, scored ones and their score sum, replay evaluations. One
    UNION ALL grouped once, so the lessons of a term meet one small hash table instead of
    five; each part keeps to the period's lessons (a week's report reads a week's rows)."""
    zero = literal(0)
    in_period = select(Lesson.id).where(
        Lesson.scheduled_start >= q.period.starts, Lesson.scheduled_start < q.period.ends
    )

    def part(lesson_id: Any, talks: Any = zero, notes: Any = zero, patrol: Any = zero,
             recordings: Any = zero, exemplary: Any = zero, scored: Any = zero,
             score: Any = None, replays: Any = zero) -> Select[Any]:  # fmt: skip
        return select(
            lesson_id.label("lesson_id"),
            talks.label("talks"),
            notes.label("notes"),
            patrol.label("patrol"),
            recordings.label("recordings"),
            exemplary.label("exemplary"),
            scored.label("scored"),
            (literal(0.0) if score is None else score).label("score"),
            replays.label("replays"),
        ).where(lesson_id.in_(in_period))

    one = literal(1)
    score = LibraryRecording.score
    rows = union_all(
        part(PatrolTalk.lesson_id, talks=one, patrol=one),
        part(EvaluationNote.lesson_id, notes=one,
             patrol=case((EvaluationNote.author_role == "patrol", 1), else_=0)),
        part(LibraryRecording.lesson_id, recordings=one,
             exemplary=case((LibraryRecording.exemplary_state
                             == ExemplaryState.EXEMPLARY.value, 1), else_=0),
             scored=case((score.is_not(None), 1), else_=0),
             score=func.coalesce(score, 0.0)),
        part(LibraryRecording.lesson_id, replays=one).join(
            LibraryEvaluation, LibraryEvaluation.recording_id == LibraryRecording.id),
    ).subquery()  # fmt: skip
    counted = ("talks", "notes", "patrol", "recordings", "exemplary", "scored", "replays")
    sums = [func.sum(rows.c[name]).label(name) for name in counted]
    return (
        select(rows.c.lesson_id, *sums, func.sum(rows.c.score).label("score_sum"))
        .group_by(rows.c.lesson_id)
        .subquery()
    )


async def delivered(session: AsyncSession, q: ReportQuery, by: str) -> list[dict[str, Any]]:
    """The lesson side, one row per group."""
    room, school = aliased(Classroom), aliased(School)
    extras = _lesson_extras(q)
    patrolled = extras.c.patrol > 0
    live = Lesson.started_at.is_not(None)
    keys = _keys(by, _delivered_key(by, q, school, room), room.school_id,
                 week_key(Lesson.scheduled_start, q.weeks))  # fmt: skip
    late_s = epoch_s(Lesson.started_at) - epoch_s(Lesson.scheduled_start)
    live_s = epoch_s(Lesson.ended_at) - epoch_s(Lesson.started_at)
    query = (
        select(
            *keys,
            func.count().label("scheduled"),
            _sum(live).label("held"),
            _sum(and_(Lesson.state == LessonStatus.ENDED.value, ~live)).label("cancelled"),
            _sum(
                and_(Lesson.state == LessonStatus.SCHEDULED.value, Lesson.scheduled_end <= q.now)
            ).label("not_held"),
            _sum(and_(live, late_s <= q.on_time_grace_s)).label("on_time"),
            # The lesson's own count (kept by a trigger), not 4 lesson_receivers rows each.
            func.coalesce(func.sum(case((live, Lesson.receiver_count), else_=0)), 0).label(
                "receivers"
            ),
            func.coalesce(
                func.sum(case((and_(live, Lesson.ended_at.is_not(None)), live_s), else_=0.0)), 0.0
            ).label("delivered_s"),
            _sum(and_(live, patrolled)).label("patrolled"),
            func.coalesce(func.sum(extras.c.talks), 0).label("talks"),
            func.coalesce(func.sum(extras.c.notes), 0).label("notes"),
            func.coalesce(func.sum(extras.c.replays), 0).label("replays"),
            func.coalesce(func.sum(extras.c.recordings), 0).label("recordings"),
            func.coalesce(func.sum(extras.c.exemplary), 0).label("exemplary"),
            func.coalesce(func.sum(extras.c.scored), 0).label("scored"),
            func.coalesce(func.sum(extras.c.score_sum), 0.0).label("score_sum"),
        )
        .select_from(Lesson)
        .join(room, room.id == Lesson.lead_classroom_id)
        .outerjoin(extras, extras.c.lesson_id == Lesson.id)
        .where(
            Lesson.scheduled_start >= q.period.starts,
            Lesson.scheduled_start < q.period.ends,
            q.in_scope(room.school_id),
        )
        .group_by(*(k.element for k in keys))
    )
    if by == "county":  # the only grouping that needs the school row
        query = query.join(school, school.id == room.school_id)
    rows = []
    for row in await session.execute(query):
        values = dict(row._mapping)
        values["delivered_hours"] = float(values.pop("delivered_s") or 0) / 3600
        values["evaluations"] = int(values.pop("notes")) + int(values.pop("replays"))
        values["score_sum"] = float(values["score_sum"] or 0)
        rows.append(values)
    return rows


async def cancelled_in_timetable(
    session: AsyncSession, q: ReportQuery, by: str
) -> list[dict[str, Any]]:
    """Slot exceptions `cancel` on a day of the period (they leave no lesson row)."""
    room, school = aliased(Classroom), aliased(School)
    week = day_week_key(SlotException.day, q.weeks)
    key = {
        "total": literal("total"),
        "county": school.county_id,
        "school": school.id,
        "subject": TimetableSlot.subject,
        "teacher": TimetableSlot.teacher_id,
        "week": week,
    }.get(by)
    keys = _keys(by, key, school.id, week)
    query = (
        select(*keys, func.count().label("n"))
        .select_from(SlotException)
        .join(TimetableSlot, TimetableSlot.id == SlotException.slot_id)
        .join(room, room.id == TimetableSlot.lead_classroom_id)
        .join(school, school.id == room.school_id)
        .where(
            SlotException.action == ExceptionAction.CANCEL.value,
            SlotException.day >= q.period.first_day,
            SlotException.day <= q.period.last_day,
            q.in_scope(school.id),
        )
        .group_by(*(k.element for k in keys))
    )
    rows = []
    for row in await session.execute(query):
        values = dict(row._mapping)
        n = values.pop("n")
        rows.append({**values, "scheduled": n, "cancelled": n})
    return rows


async def received(session: AsyncSession, q: ReportQuery, by: str) -> list[dict[str, Any]]:
    """The attendance side: receiving classrooms in scope, one row per group."""
    school = aliased(School)
    # Attendance rows carry their lesson's district day: no join to lessons unless the
    # grouping needs a lesson column (subject, teacher).
    week = day_week_key(LessonAttendance.day, q.weeks)
    key = {
        "total": literal("total"),
        "county": school.county_id,
        "school": LessonAttendance.school_id,
        "subject": Lesson.subject,
        "teacher": Lesson.teacher_id,
        "week": week,
    }.get(by)
    keys = _keys(by, key, LessonAttendance.school_id, week)
    status = LessonAttendance.status
    came = status.in_([AttendanceStatus.PRESENT.value, AttendanceStatus.LATE.value])
    measured = and_(came, LessonAttendance.quality_samples > 0)
    loss = LessonAttendance.loss_p95
    bands = []
    low = None
    for name, high in QUALITY_BANDS:
        condition = and_(measured, loss < high) if low is None else and_(measured, loss >= low,
                                                                          loss < high)  # fmt: skip
        bands.append(_sum(condition).label(f"quality_{name}"))
        low = high
    query = (
        select(
            *keys,
            _sum(status != AttendanceStatus.PENDING.value).label("expected"),
            _sum(came).label("present"),
            _sum(status == AttendanceStatus.LATE.value).label("late"),
            func.coalesce(func.sum(LessonAttendance.present_s), 0.0).label("received_s"),
            *bands,
            _sum(and_(measured, loss >= low)).label("quality_bad"),
            _sum(and_(came, or_(LessonAttendance.quality_samples == 0, loss.is_(None)))).label(
                "quality_unknown"
            ),
        )
        .select_from(LessonAttendance)
        .where(
            LessonAttendance.role == "receiver",
            LessonAttendance.day >= q.period.first_day,
            LessonAttendance.day <= q.period.last_day,
            q.in_scope(LessonAttendance.school_id),
        )
        .group_by(*(k.element for k in keys))
    )
    if by in ("subject", "teacher"):
        query = query.join(Lesson, Lesson.id == LessonAttendance.lesson_id)
    elif by == "county":
        query = query.join(school, school.id == LessonAttendance.school_id)
    rows = []
    for row in await session.execute(query):
        values = dict(row._mapping)
        values["received_hours"] = float(values.pop("received_s") or 0) / 3600
        rows.append(values)
    return rows


async def figures(session: AsyncSession, q: ReportQuery, by: str) -> dict[str | None, Figures]:
    """Every figure per group `by` (total, county, school, subject, teacher, week)."""
    merged: dict[str | None, Figures] = {}
    for part in (
        await delivered(session, q, by),
        await cancelled_in_timetable(session, q, by),
        await received(session, q, by),
    ):
        for values in part:
            key = values["key"]
            merged.setdefault(key, Figures(key=key)).add(
                {k: v for k, v in values.items() if k in FIGURE_NAMES}
            )
    return merged


async def names(session: AsyncSession, by: str, keys: list[str | None]) -> dict[str, str]:
    """Display names of group keys: county, school and teacher names; subjects as they are."""
    ids = [k for k in keys if k]
    if by == "county":
        rows = await session.execute(select(County.id, County.name).where(County.id.in_(ids)))
    elif by == "school":
        rows = await session.execute(select(School.id, School.name).where(School.id.in_(ids)))
    elif by == "teacher":
        rows = await session.execute(
            select(Account.id, Account.display_name).where(Account.id.in_(ids))
        )
    else:
        return {k: k for k in ids}
    return {key: name for key, name in rows}


async def school_kinds(session: AsyncSession, ids: list[str]) -> dict[str, tuple[str, str]]:
    """school id -> (kind, county name) for the teaching-point table."""
    rows = await session.execute(
        select(School.id, School.kind, func.coalesce(County.name, ""))
        .outerjoin(County, County.id == School.county_id)
        .where(School.id.in_(ids))
    )
    return {sid: (kind, county) for sid, kind, county in rows}


TEACHING_POINT = SchoolKind.TEACHING_POINT.value


async def exemplary_progress(
    session: AsyncSession, q: ReportQuery, since: date, until: date, starts: datetime
) -> tuple[int, int]:
    """(exemplary lessons of the scope, of the whole district) recorded since `starts`."""
    room, school = aliased(Classroom), aliased(School)
    exemplary = LibraryRecording.exemplary_state == ExemplaryState.EXEMPLARY.value
    district = await session.scalar(
        select(func.count())
        .select_from(LibraryRecording)
        .where(exemplary, LibraryRecording.started_at >= starts)
    )
    if q.school_ids is None:
        return int(district or 0), int(district or 0)
    mine = await session.scalar(
        select(func.count())
        .select_from(LibraryRecording)
        .join(Lesson, Lesson.id == LibraryRecording.lesson_id)
        .join(room, room.id == Lesson.lead_classroom_id)
        .join(school, school.id == room.school_id)
        .where(exemplary, LibraryRecording.started_at >= starts, q.in_scope(school.id))
    )
    return int(mine or 0), int(district or 0)

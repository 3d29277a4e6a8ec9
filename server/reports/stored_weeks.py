"""The report's (school, week) figures: stored for settled weeks, computed live for the rest.

A week is *settled* a day after it ends, once every lesson scheduled in it has its scheduled
end in the past: from then on its figures change only through writes, and every such write
leaves a mark (server/db/report_models.py, triggers of migration 0011). So:

- `refresh` (a transaction of its own, before the report's) stores the period's settled
  whole weeks that are not stored yet (or were stored with another on-time grace) for every
  school of the district, recomputes the (school, week) pairs that carry marks, and clears
  the marks it has seen;
- `school_week_rows` (in the report's transaction) reads the stored rows of unmarked pairs
  and computes the rest live: the weeks still running, the period's partial edge weeks and
  any pair marked since the refresh.

A mark written while a refresh computes keeps its place (the refresh clears a mark only at
the count it read), so a stored row is never trusted past a change it did not see. Refreshes
run one at a time (an advisory lock on PostgreSQL; SQLite has one writer anyway). A refresh
that fails (the database busy, read-only) costs speed, not figures: everything not stored is
computed live.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import Lesson, School
from server.db.report_models import ALL_DAYS, ReportMark, ReportSchoolWeek, ReportWeek
from server.reports.periods import Period
from server.reports.queries import (
    Figures,
    ReportQuery,
    cancelled_in_timetable,
    delivered,
    received,
    week_key,
)
from server.reports.sql import for_aggregates

log = logging.getLogger(__name__)

Week = tuple[date, datetime, datetime]  # (its Monday, start, end), clipped to the period

# A week is stored this long after it ends at the earliest.
SETTLE = timedelta(days=1)
# A mark's day is a UTC day (or a district day): a district week may hold the day before
# or after it.
_SPREAD = (timedelta(days=-1), timedelta(0), timedelta(days=1))
# Refreshes one at a time (pg_advisory_xact_lock's key: "tongke reports" in ASCII, folded).
_LOCK_KEY = 0x746F6E676B65

# The summed figures in field order, each with its type (PostgreSQL sums come as Decimal).
SUMMED = tuple((f.name, type(f.default)) for f in fields(Figures) if f.name not in ("key", "name"))
_COLUMNS = [getattr(ReportSchoolWeek, name) for name, _ in SUMMED]

Row = tuple[str | None, str | None, list[Any]]  # (school, Monday as ISO text, figures)


def vector_of(values: dict[str, Any]) -> list[Any]:
    return [kind(values.get(name) or 0) for name, kind in SUMMED]


def accumulate(into: dict[Any, list[Any]], key: Any, vector: list[Any]) -> None:
    """Adds a row's figures to its group's (plain lists: ~7,600 rows a term, several times)."""
    current = into.get(key)
    into[key] = (
        list(vector) if current is None else [a + b for a, b in zip(current, vector, strict=True)]
    )


async def live_rows(session: AsyncSession, q: ReportQuery) -> list[Row]:
    """Every (school, week) row of q, from the lessons, timetable and attendance tables."""
    rows: list[Row] = []
    for part in (
        await delivered(session, q, "school_week"),
        await cancelled_in_timetable(session, q, "school_week"),
        await received(session, q, "school_week"),
    ):
        rows.extend((values["key"], values["week"], vector_of(values)) for values in part)
    return rows


def _whole(q: ReportQuery, week: Week) -> bool:
    monday = week[0]
    return monday >= q.period.first_day and monday + timedelta(days=6) <= q.period.last_day


def _settled_weeks(q: ReportQuery) -> list[Week]:
    """The period's whole weeks that ended at least SETTLE ago."""
    return [w for w in q.weeks if _whole(q, w) and w[2] + SETTLE <= q.now]


def _runs(weeks: Sequence[Week]) -> list[list[Week]]:
    """Consecutive weeks, grouped: each run is one live query."""
    runs: list[list[Week]] = []
    for week in weeks:
        if runs and week[0] - runs[-1][-1][0] == timedelta(days=7):
            runs[-1].append(week)
        else:
            runs.append([week])
    return runs


def _over(q: ReportQuery, run: list[Week], school_ids: Any) -> ReportQuery:
    """q restricted to a run of its weeks and to `school_ids` (a select, or None: all)."""
    first = max(run[0][0], q.period.first_day)
    last = min(run[-1][0] + timedelta(days=6), q.period.last_day)
    period = Period(q.period.kind, first, last, run[0][1], run[-1][2])
    return replace(q, school_ids=school_ids, period=period, weeks=list(run))


async def _marks(session: AsyncSession, weeks: Sequence[Week]) -> list[tuple[date, str, int]]:
    """The marks that may touch these weeks (and every-week marks)."""
    first = weeks[0][0] - timedelta(days=1)
    last = weeks[-1][0] + timedelta(days=7)
    rows = await session.execute(
        select(ReportMark.day, ReportMark.school_id, ReportMark.n).where(
            (ReportMark.day.between(first, last)) | (ReportMark.day == ALL_DAYS)
        )
    )
    return [(day, school, n) for day, school, n in rows]


def _mondays_of(day: date) -> set[date]:
    return {(day + d) - timedelta(days=(day + d).weekday()) for d in _SPREAD}


def _marked(marks: Iterable[tuple[date, str, int]], mondays: set[date]) -> dict[date, set[str]]:
    """Stored weeks -> the schools whose stored row there a mark makes untrustworthy."""
    out: dict[date, set[str]] = defaultdict(set)
    for day, school, _ in marks:
        for monday in mondays if day == ALL_DAYS else _mondays_of(day) & mondays:
            out[monday].add(school)
    return out


async def _stored(session: AsyncSession, mondays: Iterable[date], grace_s: float) -> set[date]:
    rows = await session.execute(
        select(ReportWeek.monday).where(
            ReportWeek.monday.in_(list(mondays)), ReportWeek.grace_s == grace_s
        )
    )
    return set(rows.scalars())


async def school_week_rows(session: AsyncSession, q: ReportQuery) -> list[Row]:
    """q's (school, week) rows: stored where they hold, live everywhere else."""
    settled = _settled_weeks(q)
    stored: set[date] = set()
    marked: dict[date, set[str]] = {}
    if settled:
        stored = await _stored(session, (w[0] for w in settled), q.on_time_grace_s)
        marked = _marked(await _marks(session, settled), stored) if stored else {}
    rows: list[Row] = []
    if stored:
        result = await session.execute(
            select(ReportSchoolWeek.school_id, ReportSchoolWeek.monday, *_COLUMNS).where(
                ReportSchoolWeek.monday.in_(stored), q.in_scope(ReportSchoolWeek.school_id)
            )
        )
        for school, monday, *figures in result:
            if school not in marked.get(monday, ()):
                rows.append((school, monday.isoformat(), figures))
    for run in _runs([w for w in q.weeks if w[0] not in stored]):
        rows += await live_rows(session, _over(q, run, q.school_ids))
    by_monday = {w[0]: w for w in settled}
    for monday, schools in sorted(marked.items()):
        mine = select(School.id).where(School.id.in_(schools), q.in_scope(School.id))
        rows += await live_rows(session, _over(q, [by_monday[monday]], mine))
    return rows


def _by_pair(rows: Iterable[Row]) -> dict[tuple[str, date], list[Any]]:
    """Rows summed per (school, Monday): a pair has a row per side."""
    out: dict[tuple[str, date], list[Any]] = {}
    for school, monday, vector in rows:
        if school is not None and monday is not None:
            accumulate(out, (school, date.fromisoformat(monday)), vector)
    return out


async def _insert_rows(session: AsyncSession, rows: Iterable[Row]) -> None:
    names = [name for name, _ in SUMMED]
    values = [
        {"school_id": school, "monday": monday, **dict(zip(names, vector, strict=True))}
        for (school, monday), vector in _by_pair(rows).items()
    ]
    if values:
        await session.execute(insert(ReportSchoolWeek), values)


async def _unfinished(session: AsyncSession, q: ReportQuery, weeks: list[Week]) -> set[date]:
    """Weeks with a lesson scheduled to end after now (their not_held is still moving)."""
    if not weeks:
        return set()
    week = week_key(Lesson.scheduled_start, weeks)
    rows = await session.execute(
        select(week, func.max(Lesson.scheduled_end))
        .where(Lesson.scheduled_start >= weeks[0][1], Lesson.scheduled_start < weeks[-1][2])
        .group_by(week)
    )
    return {date.fromisoformat(m) for m, end in rows if m and end is not None and end > q.now}


async def _store(session: AsyncSession, q: ReportQuery) -> None:
    settled = _settled_weeks(q)
    if not settled:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    await for_aggregates(session)
    # Read before anything is computed: what changes from here on keeps its mark.
    marks = await _marks(session, settled)
    if any(day == ALL_DAYS for day, _, _ in marks):
        # A classroom or slot changed school: every stored week is suspect; start again.
        await session.execute(delete(ReportSchoolWeek))
        await session.execute(delete(ReportWeek))
    stored = await _stored(session, (w[0] for w in settled), q.on_time_grace_s)
    unfinished = await _unfinished(session, q, [w for w in settled if w[0] not in stored])
    fresh = [w for w in settled if w[0] not in stored and w[0] not in unfinished]
    recomputed: dict[date, set[str] | None] = {w[0]: None for w in fresh}  # None: every school
    if fresh:
        mondays = [w[0] for w in fresh]
        await session.execute(delete(ReportSchoolWeek).where(ReportSchoolWeek.monday.in_(mondays)))
        await session.execute(delete(ReportWeek).where(ReportWeek.monday.in_(mondays)))
        session.add_all(ReportWeek(monday=m, grace_s=q.on_time_grace_s, computed_at=q.now)
                        for m in mondays)  # fmt: skip
        await session.flush()
        for run in _runs(fresh):
            await _insert_rows(session, await live_rows(session, _over(q, run, None)))
    by_monday = {w[0]: w for w in settled}
    for monday, schools in sorted(_marked(marks, stored).items()):
        pair = and_(ReportSchoolWeek.monday == monday, ReportSchoolWeek.school_id.in_(schools))
        await session.execute(delete(ReportSchoolWeek).where(pair))
        mine = select(School.id).where(School.id.in_(schools))
        await _insert_rows(session, await live_rows(session, _over(q, [by_monday[monday]], mine)))
        recomputed[monday] = schools
    await _clear(session, marks, recomputed)


async def _clear(
    session: AsyncSession,
    marks: list[tuple[date, str, int]],
    recomputed: dict[date, set[str] | None],
) -> None:
    """Clears the marks whose every week is recomputed now or not stored, at the count read."""
    stored = set((await session.execute(select(ReportWeek.monday))).scalars())

    def done(day: date, school: str) -> bool:
        if day == ALL_DAYS:
            return True  # the store started again above
        for monday in _mondays_of(day) & stored:
            schools = recomputed.get(monday, set())
            if schools is not None and school not in schools:
                return False
        return True

    seen = [(day, school, n) for day, school, n in marks if done(day, school)]
    if seen:
        key = tuple_(ReportMark.day, ReportMark.school_id, ReportMark.n)
        for start in range(0, len(seen), 1000):
            await session.execute(delete(ReportMark).where(key.in_(seen[start : start + 1000])))


async def refresh(sessions: async_sessionmaker[AsyncSession], q: ReportQuery) -> None:
    """Stores what q's settled weeks lack and recomputes their marked pairs (see above)."""
    try:
        async with sessions.begin() as session:
            await _store(session, q)
    except SQLAlchemyError as exc:
        log.warning("report weeks not stored (computed live instead): %s", type(exc).__name__)

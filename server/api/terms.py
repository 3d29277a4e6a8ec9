"""/api/terms: 学期 with holidays and make-up days (调休); generating their lessons.

Terms are the district's calendar: everyone signed in reads; district admins change. A
change to a term's calendar generates its lessons again in the same transaction, so a
change that would double-book is refused and nothing is written.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Response, status
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import DistrictAdmin, SignedIn
from server.api.crud import ERRORS, fetch_or_404
from server.api.errors import ApiError
from server.api.timetable_schemas import (
    GenerateOut,
    HolidayIn,
    MakeupDayIn,
    TermIn,
    TermOut,
    TermPatch,
)
from server.auth import State
from server.db.calendar_models import DayKind, Term, TermDay, TimetableSlot
from server.db.models import Lesson, LessonStatus
from server.timetable.generate import GenerateResult, generate, term_calendar

router = APIRouter(prefix="/terms", tags=["timetable"])


def generated_out(result: GenerateResult) -> GenerateOut:
    return GenerateOut(
        created=result.created,
        updated=result.updated,
        removed=result.removed,
        kept=result.kept,
        lessons=result.lessons,
    )


async def term_out(session: AsyncSession, term: Term) -> TermOut:
    calendar = await term_calendar(session, term)
    return TermOut(
        id=term.id,
        name=term.name,
        first_day=term.first_day,
        last_day=term.last_day,
        holidays=[HolidayIn(first_day=h.first_day, last_day=h.last_day, name=h.name)
                  for h in calendar.holidays],
        makeup_days=[MakeupDayIn(day=m.day, follows_weekday=m.follows_weekday, name=m.name)
                     for m in calendar.makeup_days],
        teaching_days=len(calendar.teaching_days()),
        created_at=term.created_at,
    )  # fmt: skip


def _span(first: date, last: date) -> str:
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


def check_calendar(
    first: date, last: date, holidays: list[HolidayIn], makeup_days: list[MakeupDayIn]
) -> None:
    """422 with a sentence naming the offending day: the term's days run forward, holidays
    and make-up days lie inside it, a make-up day is no holiday and appears once."""
    if last < first:
        raise ApiError(422, "invalid_term_days", "last_day must not be before first_day.")
    term = _span(first, last)
    for holiday in holidays:
        name = f"Holiday {holiday.name} " if holiday.name else "Holiday "
        if holiday.last_day < holiday.first_day:
            raise ApiError(
                422, "invalid_term_days", f"{name}ends before it begins ({holiday.first_day})."
            )
        if holiday.first_day < first or holiday.last_day > last:
            raise ApiError(
                422,
                "day_outside_term",
                f"{name}({_span(holiday.first_day, holiday.last_day)}) lies outside the "
                f"term ({term}).",
            )
    seen: set[date] = set()
    for makeup in makeup_days:
        if not first <= makeup.day <= last:
            raise ApiError(
                422,
                "day_outside_term",
                f"Make-up day {makeup.day} lies outside the term ({term}).",
            )
        if any(h.first_day <= makeup.day <= h.last_day for h in holidays):
            raise ApiError(
                422, "makeup_on_holiday", f"Make-up day {makeup.day} falls on a holiday."
            )
        if makeup.day in seen:
            raise ApiError(422, "makeup_twice", f"Make-up day {makeup.day} is listed twice.")
        seen.add(makeup.day)


async def _check_unique(
    session: AsyncSession, name: str, first: date, last: date, except_id: str | None = None
) -> None:
    for other in await session.scalars(select(Term)):
        if other.id == except_id:
            continue
        if other.name == name:
            raise ApiError(409, "term_name_taken", f"A term named {name} exists already.")
        if first <= other.last_day and other.first_day <= last:
            raise ApiError(
                409,
                "term_overlap",
                f"The term overlaps {other.name} ({_span(other.first_day, other.last_day)}).",
            )


async def _set_days(
    session: AsyncSession, term_id: str, holidays: list[HolidayIn], makeup: list[MakeupDayIn]
) -> None:
    await session.execute(delete(TermDay).where(TermDay.term_id == term_id))
    for h in holidays:
        session.add(
            TermDay(
                term_id=term_id,
                kind=DayKind.HOLIDAY.value,
                first_day=h.first_day,
                last_day=h.last_day,
                name=h.name,
            )
        )
    for m in makeup:
        session.add(
            TermDay(
                term_id=term_id,
                kind=DayKind.MAKEUP.value,
                first_day=m.day,
                last_day=m.day,
                follows_weekday=m.follows_weekday,
                name=m.name,
            )
        )
    await session.flush()  # fmt: skip


@router.get("", responses=ERRORS)
async def list_terms(_: SignedIn, state: State) -> list[TermOut]:
    async with state.db.sessions.begin() as session:
        terms = await session.scalars(select(Term).order_by(Term.first_day))
        return [await term_out(session, term) for term in terms]


@router.get("/{term_id}", responses=ERRORS)
async def get_term(term_id: str, _: SignedIn, state: State) -> TermOut:
    async with state.db.sessions.begin() as session:
        return await term_out(session, await fetch_or_404(session, Term, term_id, "term"))


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_term(body: TermIn, _: DistrictAdmin, state: State) -> TermOut:
    check_calendar(body.first_day, body.last_day, body.holidays, body.makeup_days)
    async with state.db.sessions.begin() as session:
        await _check_unique(session, body.name, body.first_day, body.last_day)
        term = Term(name=body.name, first_day=body.first_day, last_day=body.last_day)
        session.add(term)
        await session.flush()
        await _set_days(session, term.id, body.holidays, body.makeup_days)
        return await term_out(session, term)


@router.patch("/{term_id}", responses=ERRORS)
async def update_term(term_id: str, body: TermPatch, _: DistrictAdmin, state: State) -> TermOut:
    """Change the name, days, holidays or make-up days; the term's lessons follow."""
    async with state.db.sessions.begin() as session:
        term = await fetch_or_404(session, Term, term_id, "term")
        current = await term_out(session, term)
        name = body.name or term.name
        first = body.first_day or term.first_day
        last = body.last_day or term.last_day
        holidays = body.holidays if body.holidays is not None else current.holidays
        makeup = body.makeup_days if body.makeup_days is not None else current.makeup_days
        check_calendar(first, last, holidays, makeup)
        await _check_unique(session, name, first, last, except_id=term_id)
        term.name, term.first_day, term.last_day = name, first, last
        await _set_days(session, term.id, holidays, makeup)
        result = await generate(session, term_id, state.settings.zone)
        out = await term_out(session, term)
        out.generated = generated_out(result)
        return out


@router.post("/{term_id}/generate", responses=ERRORS)
async def generate_lessons(term_id: str, _: DistrictAdmin, state: State) -> GenerateOut:
    """Generate the term's lessons from its timetable. Idempotent: a second call with
    nothing changed creates, updates and removes nothing. 409 timetable_conflict names the
    two slots that would double-book a classroom or a teacher; nothing is written then."""
    async with state.db.sessions.begin() as session:
        return generated_out(await generate(session, term_id, state.settings.zone))


@router.delete("/{term_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_term(term_id: str, _: DistrictAdmin, state: State) -> Response:
    """Only a term none of whose lessons went live; its scheduled lessons go with it."""
    async with state.db.sessions.begin() as session:
        await fetch_or_404(session, Term, term_id, "term")
        slot_ids = select(TimetableSlot.id).where(TimetableSlot.term_id == term_id)
        taught = await session.scalar(
            select(Lesson.id)
            .where(Lesson.slot_id.in_(slot_ids), Lesson.state != LessonStatus.SCHEDULED.value)
            .limit(1)
        )
        if taught is not None:
            raise ApiError(
                409, "term_in_use", "Lessons of this term have been taught; it stays on record."
            )
        await session.execute(delete(Lesson).where(Lesson.slot_id.in_(slot_ids)))
        await session.execute(delete(Term).where(Term.id == term_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)

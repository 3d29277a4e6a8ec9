"""Writing a term's planned lessons to the database, idempotently.

Lessons are matched to the plan by (slot_id, slot_day). A scheduled lesson follows the plan
(times, teacher, roster, policy); a live or ended one belongs to the record and is left as
it is; a scheduled lesson the plan no longer has (slot removed, moved to another weekday,
cancelled that day) is deleted. Planning again with nothing changed writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.api.errors import ApiError, not_found
from server.db.calendar_models import (
    DayKind,
    SlotException,
    Term,
    TermDay,
    TimetableSlot,
    slot_receivers,
)
from server.db.models import Account, Classroom, Lesson, LessonStatus, lesson_receivers
from server.timetable.plan import (
    ExceptionPlan,
    Holiday,
    MakeupDay,
    PlannedLesson,
    SlotPlan,
    TermCalendar,
    lesson_clash,
    plan_lessons,
)


@dataclass(frozen=True, slots=True)
class GenerateResult:
    created: int
    updated: int
    removed: int
    kept: int  # live or ended lessons left as they were
    lessons: int  # lessons of the term after generating


def slot_label(slot: TimetableSlot) -> str:
    return " ".join(part for part in (slot.subject, slot.grade, slot.title) if part)


def slot_plan(slot: TimetableSlot, receiver_ids: Sequence[str]) -> SlotPlan:
    return SlotPlan(
        id=slot.id,
        weekday=slot.weekday,
        period=slot.period,
        starts=slot.starts,
        ends=slot.ends,
        lead_classroom_id=slot.lead_classroom_id,
        teacher_id=slot.teacher_id,
        receiver_ids=tuple(receiver_ids),
        label=slot_label(slot),
    )


async def term_calendar(session: AsyncSession, term: Term) -> TermCalendar:
    rows = list(await session.scalars(select(TermDay).where(TermDay.term_id == term.id)))
    return TermCalendar(
        first_day=term.first_day,
        last_day=term.last_day,
        holidays=tuple(
            Holiday(r.first_day, r.last_day, r.name)
            for r in rows
            if r.kind == DayKind.HOLIDAY.value
        ),
        makeup_days=tuple(
            MakeupDay(r.first_day, r.follows_weekday or 1, r.name)
            for r in rows
            if r.kind == DayKind.MAKEUP.value
        ),
    )


async def term_slots(session: AsyncSession, term_id: str) -> list[tuple[TimetableSlot, SlotPlan]]:
    slots = list(
        await session.scalars(
            select(TimetableSlot)
            .where(TimetableSlot.term_id == term_id)
            .order_by(TimetableSlot.weekday, TimetableSlot.period, TimetableSlot.starts)
        )
    )
    receivers: dict[str, list[str]] = {s.id: [] for s in slots}
    if slots:
        rows = await session.execute(
            select(slot_receivers.c.slot_id, slot_receivers.c.classroom_id)
            .where(slot_receivers.c.slot_id.in_(list(receivers)))
            .order_by(slot_receivers.c.position)
        )
        for slot_id, classroom_id in rows:
            receivers[slot_id].append(classroom_id)
    return [(s, slot_plan(s, receivers[s.id])) for s in slots]


async def term_exceptions(session: AsyncSession, slot_ids: Sequence[str]) -> list[ExceptionPlan]:
    if not slot_ids:
        return []
    rows = await session.scalars(select(SlotException).where(SlotException.slot_id.in_(slot_ids)))
    return [
        ExceptionPlan(
            slot_id=r.slot_id,
            day=r.day,
            action=r.action,
            new_day=r.new_day,
            new_starts=r.new_starts,
            new_ends=r.new_ends,
            teacher_id=r.teacher_id,
        )
        for r in rows
    ]


async def plan_term(
    session: AsyncSession, term: Term, zone: tzinfo
) -> tuple[list[PlannedLesson], dict[str, tuple[TimetableSlot, SlotPlan]]]:
    slots = {s.id: (s, p) for s, p in await term_slots(session, term.id)}
    planned = plan_lessons(
        await term_calendar(session, term),
        [p for _, p in slots.values()],
        await term_exceptions(session, list(slots)),
        zone,
    )
    return planned, slots


async def refuse_clashes(
    session: AsyncSession,
    planned: Sequence[PlannedLesson],
    slots: dict[str, tuple[TimetableSlot, SlotPlan]],
) -> None:
    """409 timetable_conflict naming both slots, the day and what they both need."""
    found = lesson_clash(planned)
    if found is None:
        return
    first, second, clash = found
    if clash.classroom_id is not None:
        room = await session.get(Classroom, clash.classroom_id)
        what = f"classroom {room.name if room else clash.classroom_id}"
    else:
        teacher = await session.get(Account, clash.teacher_id or "")
        what = f"teacher {teacher.display_name if teacher else clash.teacher_id}"
    raise ApiError(
        409,
        "timetable_conflict",
        f"{slots[first.slot_id][1].describe()} and {slots[second.slot_id][1].describe()} "
        f"both need {what} on {second.day.isoformat()}.",
    )


async def generate(session: AsyncSession, term_id: str, zone: tzinfo) -> GenerateResult:
    term = await session.get(Term, term_id)
    if term is None:
        raise not_found("term")
    planned, slots = await plan_term(session, term, zone)
    await refuse_clashes(session, planned, slots)
    existing = {
        (lesson.slot_id, lesson.slot_day): lesson
        for lesson in await session.scalars(
            select(Lesson)
            .where(Lesson.slot_id.in_(list(slots)))
            .options(selectinload(Lesson.receivers))
        )
    } if slots else {}  # fmt: skip
    created = updated = kept = 0
    wanted = set()
    for plan in planned:
        key = (plan.slot_id, plan.slot_day)
        wanted.add(key)
        slot = slots[plan.slot_id][0]
        values = {
            "title": slot.title or slot.subject or "课程",
            "teacher_id": plan.teacher_id,
            "lead_classroom_id": plan.lead_classroom_id,
            "scheduled_start": plan.start,
            "scheduled_end": plan.end,
            "subject": slot.subject,
            "grade": slot.grade,
            "recording_policy": slot.recording_policy,
            "start_mode": slot.start_mode,
        }
        lesson = existing.get(key)
        if lesson is None:
            lesson = Lesson(slot_id=plan.slot_id, slot_day=plan.slot_day, **values)
            session.add(lesson)
            await session.flush()
            await _set_receivers(session, lesson.id, plan.receiver_ids)
            created += 1
            continue
        if lesson.state != LessonStatus.SCHEDULED.value:
            kept += 1
            continue
        changed = {k: v for k, v in values.items() if getattr(lesson, k) != v}
        for name, value in changed.items():
            setattr(lesson, name, value)
        if tuple(c.id for c in lesson.receivers) != plan.receiver_ids:
            await _set_receivers(session, lesson.id, plan.receiver_ids)
            changed["receivers"] = plan.receiver_ids
        updated += bool(changed)
    stale = [
        lesson.id
        for key, lesson in existing.items()
        if key not in wanted and lesson.state == LessonStatus.SCHEDULED.value
    ]
    kept += sum(
        1
        for key, lesson in existing.items()
        if key not in wanted and lesson.state != LessonStatus.SCHEDULED.value
    )
    if stale:
        await session.execute(delete(Lesson).where(Lesson.id.in_(stale)))
    return GenerateResult(
        created=created,
        updated=updated,
        removed=len(stale),
        kept=kept,
        lessons=len(existing) - len(stale) + created,
    )


async def _set_receivers(
    session: AsyncSession, lesson_id: str, receiver_ids: Sequence[str]
) -> None:
    await session.execute(delete(lesson_receivers).where(lesson_receivers.c.lesson_id == lesson_id))
    if receiver_ids:
        await session.execute(
            insert(lesson_receivers),
            [
                {"lesson_id": lesson_id, "classroom_id": cid, "position": n}
                for n, cid in enumerate(receiver_ids)
            ],
        )

"""/api/terms/{id}/slots and /api/slots/{id}: the weekly 1+N timetable and its per-date
exceptions (cancel, move, substitute teacher).

Admins change the slots whose lead classroom their scope holds (rosters within their
scope); everyone reads the slots his scope sees (led from it or received in it). Every
change generates the term's lessons again in the same transaction: a slot that would
double-book a classroom or a teacher (against another slot of its weekday, or on one date
after an exception) is refused with 409 timetable_conflict naming both slots, and nothing
is written.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from sqlalchemy import delete, exists, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.api.access import ADMINS, EVERYONE, ScopedAdmin, SignedIn, access, require_in_scope
from server.api.crud import ERRORS, fetch_or_404
from server.api.errors import ApiError, not_found
from server.api.lessons import _check_roster, _check_teacher, check_roster_scope, classroom_ref
from server.api.terms import generated_out
from server.api.timetable_schemas import (
    ExceptionIn,
    ExceptionOut,
    GenerateOut,
    SlotIn,
    SlotOut,
    SlotPatch,
)
from server.auth import Principal, State
from server.db.calendar_models import (
    ExceptionAction,
    RecordingPolicy,
    SlotException,
    StartMode,
    Term,
    TimetableSlot,
    slot_receivers,
)
from server.db.models import Classroom, Lesson, LessonStatus
from server.timetable.generate import generate, term_calendar, term_slots
from server.timetable.plan import slot_clash

router = APIRouter(tags=["timetable"])

SlotReader = Annotated[Principal, access(EVERYONE, resource="slot")]
SlotManager = Annotated[Principal, access(ADMINS, resource="slot", manage=True)]


def slot_clause(principal: Principal) -> Any:
    """Slots led from the caller's scope or received in it."""
    rooms = principal.scope.classroom_ids()
    if rooms is None:
        return TimetableSlot.id.is_not(None)
    received = exists().where(
        slot_receivers.c.slot_id == TimetableSlot.id, slot_receivers.c.classroom_id.in_(rooms)
    )
    return or_(TimetableSlot.lead_classroom_id.in_(rooms), received)


SLOT_LOAD = (
    selectinload(TimetableSlot.teacher),
    selectinload(TimetableSlot.lead_classroom).selectinload(Classroom.school),
    selectinload(TimetableSlot.receivers).selectinload(Classroom.school),
)


def slot_out(slot: TimetableSlot, generated: GenerateOut | None = None) -> SlotOut:
    return SlotOut(
        id=slot.id,
        term_id=slot.term_id,
        weekday=slot.weekday,
        period=slot.period,
        starts=slot.starts,
        ends=slot.ends,
        title=slot.title,
        subject=slot.subject,
        grade=slot.grade,
        lead=classroom_ref(slot.lead_classroom),
        teacher_id=slot.teacher_id,
        teacher=slot.teacher.display_name,
        receivers=[classroom_ref(c) for c in slot.receivers],
        recording_policy=RecordingPolicy(slot.recording_policy),
        start_mode=StartMode(slot.start_mode),
        generated=generated,
    )


async def load_slot(session: AsyncSession, slot_id: str) -> TimetableSlot:
    slot = await session.scalar(
        select(TimetableSlot)
        .where(TimetableSlot.id == slot_id)
        .options(*SLOT_LOAD)
        .execution_options(populate_existing=True)
    )
    if slot is None:
        raise not_found("slot")
    return slot


async def _set_receivers(session: AsyncSession, slot_id: str, receiver_ids: list[str]) -> None:
    await session.execute(delete(slot_receivers).where(slot_receivers.c.slot_id == slot_id))
    if receiver_ids:
        await session.execute(
            insert(slot_receivers),
            [
                {"slot_id": slot_id, "classroom_id": cid, "position": n}
                for n, cid in enumerate(receiver_ids)
            ],
        )


async def _check_slot(session: AsyncSession, slot: TimetableSlot) -> None:
    """The slot's times run forward and no other slot of its weekday needs one of its
    classrooms or its teacher at an overlapping time (409 naming both)."""
    if slot.ends <= slot.starts:
        raise ApiError(422, "invalid_schedule", "ends must be after starts.")
    plans = {s.id: (s, p) for s, p in await term_slots(session, slot.term_id)}
    mine = plans[slot.id][1]
    found = slot_clash(mine, [p for _, p in plans.values()])
    if found is None:
        return
    other, clash = found
    if clash.classroom_id is not None:
        room = await session.get(Classroom, clash.classroom_id)
        what = f"classroom {room.name if room else clash.classroom_id}"
    else:
        what = "the same teacher"
    raise ApiError(
        409,
        "timetable_conflict",
        f"{mine.describe()} and {other.describe()} both need {what}.",
    )


async def _regenerate(session: AsyncSession, state: State, term_id: str) -> GenerateOut:
    return generated_out(await generate(session, term_id, state.settings.zone))


@router.get("/terms/{term_id}/slots", responses=ERRORS)
async def list_slots(term_id: str, principal: SignedIn, state: State) -> list[SlotOut]:
    async with state.db.sessions.begin() as session:
        await fetch_or_404(session, Term, term_id, "term")
        rows = await session.scalars(
            select(TimetableSlot)
            .where(TimetableSlot.term_id == term_id, slot_clause(principal))
            .options(*SLOT_LOAD)
            .order_by(TimetableSlot.weekday, TimetableSlot.period, TimetableSlot.starts)
        )
        return [slot_out(slot) for slot in rows]


@router.post("/terms/{term_id}/slots", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_slot(term_id: str, body: SlotIn, principal: ScopedAdmin, state: State) -> SlotOut:
    async with state.db.sessions.begin() as session:
        await fetch_or_404(session, Term, term_id, "term")
        await check_roster_scope(
            session, principal, body.lead_classroom_id, body.receiver_classroom_ids
        )
        await require_in_scope(session, principal, "account", body.teacher_id, manage=False)
        await _check_teacher(session, body.teacher_id)
        await _check_roster(session, body.lead_classroom_id, body.receiver_classroom_ids)
        slot = TimetableSlot(
            term_id=term_id,
            **body.model_dump(exclude={"receiver_classroom_ids"}, mode="python"),
        )
        session.add(slot)
        await session.flush()
        await _set_receivers(session, slot.id, body.receiver_classroom_ids)
        await _check_slot(session, slot)
        generated = await _regenerate(session, state, term_id)
        return slot_out(await load_slot(session, slot.id), generated)


@router.get("/slots/{slot_id}", responses=ERRORS)
async def get_slot(slot_id: str, _: SlotReader, state: State) -> SlotOut:
    async with state.db.sessions.begin() as session:
        return slot_out(await load_slot(session, slot_id))


@router.patch("/slots/{slot_id}", responses=ERRORS)
async def update_slot(
    slot_id: str, body: SlotPatch, principal: SlotManager, state: State
) -> SlotOut:
    """Change a slot; its scheduled lessons follow, taught ones stay as they were."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    async with state.db.sessions.begin() as session:
        slot = await load_slot(session, slot_id)
        if "teacher_id" in changes:
            await require_in_scope(
                session, principal, "account", changes["teacher_id"], manage=False
            )
            await _check_teacher(session, changes["teacher_id"])
        receiver_ids = changes.pop("receiver_classroom_ids", None)
        lead_id = changes.get("lead_classroom_id", slot.lead_classroom_id)
        if receiver_ids is not None or lead_id != slot.lead_classroom_id:
            if receiver_ids is None:
                receiver_ids = [c.id for c in slot.receivers]
            await _check_roster(session, lead_id, receiver_ids)
            await check_roster_scope(session, principal, lead_id, receiver_ids)
            await _set_receivers(session, slot.id, receiver_ids)
        for name, value in changes.items():
            setattr(slot, name, value.value if hasattr(value, "value") else value)
        await session.flush()
        await _check_slot(session, slot)
        generated = await _regenerate(session, state, slot.term_id)
        return slot_out(await load_slot(session, slot_id), generated)


@router.delete("/slots/{slot_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_slot(slot_id: str, _: SlotManager, state: State) -> Response:
    """The slot and its scheduled lessons go; lessons already taught stay on record."""
    async with state.db.sessions.begin() as session:
        slot = await fetch_or_404(session, TimetableSlot, slot_id, "slot")
        term_id = slot.term_id
        # Its scheduled lessons first: once the slot is gone they would linger, unlinked.
        await session.execute(
            delete(Lesson).where(
                Lesson.slot_id == slot_id, Lesson.state == LessonStatus.SCHEDULED.value
            )
        )
        await session.execute(delete(TimetableSlot).where(TimetableSlot.id == slot_id))
        await _regenerate(session, state, term_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Exceptions -------------------------------------------------------------------------------


def exception_out(row: SlotException, generated: GenerateOut | None = None) -> ExceptionOut:
    return ExceptionOut(
        slot_id=row.slot_id,
        day=row.day,
        action=ExceptionAction(row.action),
        new_day=row.new_day,
        new_starts=row.new_starts,
        new_ends=row.new_ends,
        teacher_id=row.teacher_id,
        note=row.note,
        generated=generated,
    )


@router.get("/slots/{slot_id}/exceptions", responses=ERRORS)
async def list_exceptions(slot_id: str, _: SlotReader, state: State) -> list[ExceptionOut]:
    async with state.db.sessions.begin() as session:
        await fetch_or_404(session, TimetableSlot, slot_id, "slot")
        rows = await session.scalars(
            select(SlotException)
            .where(SlotException.slot_id == slot_id)
            .order_by(SlotException.day)
        )
        return [exception_out(row) for row in rows]


@router.put("/slots/{slot_id}/exceptions/{day}", responses=ERRORS)
async def put_exception(
    slot_id: str, day: date, body: ExceptionIn, principal: SlotManager, state: State
) -> ExceptionOut:
    """Cancel, move or hand to a substitute the slot's lesson of `day` (the slot's regular
    day). Replaces an earlier exception for that day; kept across regeneration."""
    async with state.db.sessions.begin() as session:
        slot = await fetch_or_404(session, TimetableSlot, slot_id, "slot")
        term = await session.get_one(Term, slot.term_id)
        calendar = await term_calendar(session, term)
        if calendar.timetable_weekday(day) != slot.weekday:
            raise ApiError(
                422, "not_a_slot_day", f"The slot has no lesson on {day} (not its teaching day)."
            )
        if body.action is ExceptionAction.SUBSTITUTE and body.teacher_id is None:
            raise ApiError(422, "teacher_required", "A substitute names the teacher (teacher_id).")
        if body.action is ExceptionAction.MOVE:
            if body.new_day is None and body.new_starts is None and body.new_ends is None:
                raise ApiError(
                    422, "move_needs_target", "A move names new_day, new_starts or new_ends."
                )
            target = body.new_day or day
            if calendar.timetable_weekday(target) is None:
                raise ApiError(
                    422,
                    "not_a_teaching_day",
                    f"{target} is outside the term, a holiday or a weekend without 调休; "
                    "a lesson cannot move there.",
                )
            if (body.new_ends or slot.ends) <= (body.new_starts or slot.starts):
                raise ApiError(
                    422, "invalid_schedule", "The moved lesson must end after it starts."
                )
        if body.teacher_id is not None:
            await require_in_scope(session, principal, "account", body.teacher_id, manage=False)
            await _check_teacher(session, body.teacher_id)
        row = await session.scalar(
            select(SlotException).where(SlotException.slot_id == slot_id, SlotException.day == day)
        )
        if row is None:
            row = SlotException(slot_id=slot_id, day=day)
            session.add(row)
        keep_move = body.action is ExceptionAction.MOVE
        row.action = body.action.value
        row.new_day = body.new_day if keep_move else None
        row.new_starts = body.new_starts if keep_move else None
        row.new_ends = body.new_ends if keep_move else None
        row.teacher_id = body.teacher_id if body.action is not ExceptionAction.CANCEL else None
        row.note = body.note
        await session.flush()
        generated = await _regenerate(session, state, slot.term_id)
        return exception_out(row, generated)


@router.delete(
    "/slots/{slot_id}/exceptions/{day}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS
)
async def delete_exception(slot_id: str, day: date, _: SlotManager, state: State) -> Response:
    """The day's lesson follows the slot again."""
    async with state.db.sessions.begin() as session:
        slot = await fetch_or_404(session, TimetableSlot, slot_id, "slot")
        result = await session.execute(
            delete(SlotException).where(SlotException.slot_id == slot_id, SlotException.day == day)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise ApiError(404, "exception_not_found", f"The slot has no exception on {day}.")
        await _regenerate(session, state, slot.term_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

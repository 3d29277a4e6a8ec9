"""/api/terms/{id}/timetable: the term's weekly timetable as XLSX or CSV, out and in.

Import replaces the term's timetable with the sheet in one transaction: a row matching a
slot by weekday, period and lead classroom keeps that slot (and its exceptions); other
slots are removed with their scheduled lessons; then the lessons are generated again. Any
bad cell, unknown classroom or teacher, or double booking refuses the whole sheet.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Response, UploadFile
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import DistrictAdmin, SignedIn
from server.api.crud import ERRORS, fetch_or_404
from server.api.errors import ApiError
from server.api.slots import _set_receivers
from server.api.terms import generated_out
from server.api.timetable_schemas import GenerateOut
from server.auth import Principal, State
from server.db.calendar_models import Term, TimetableSlot
from server.db.models import Account, AccountRole, Classroom, Lesson, LessonStatus, School
from server.timetable.generate import generate, term_slots
from server.timetable.plan import slot_clash
from server.timetable.sheet import (
    SheetError,
    SheetRow,
    cell_error,
    read_sheet,
    write_csv,
    write_xlsx,
)

router = APIRouter(prefix="/terms/{term_id}", tags=["timetable"])

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _sheet_error(exc: SheetError) -> ApiError:
    return ApiError(422, exc.code, exc.message)


async def _rooms(session: AsyncSession) -> dict[str, Classroom]:
    rows = await session.execute(select(Classroom, School.name).join(School))
    return {f"{school}/{room.name}": room for room, school in rows}


async def _rows(session: AsyncSession, term_id: str, principal: Principal) -> list[SheetRow]:
    """The term's slots the caller's scope sees (led from it or received in it)."""
    names = {room.id: key for key, room in (await _rooms(session)).items()}
    users = {i: name for i, name in await session.execute(select(Account.id, Account.username))}
    in_scope = principal.scope.classroom_ids()
    seen = None if in_scope is None else set(await session.scalars(in_scope))
    rows = []
    for slot, plan in await term_slots(session, term_id):
        rooms = {slot.lead_classroom_id, *plan.receiver_ids}
        if seen is not None and not rooms & seen:
            continue
        rows.append(
            SheetRow(
                row=0, weekday=slot.weekday, period=slot.period, starts=slot.starts,
                ends=slot.ends, subject=slot.subject, grade=slot.grade, title=slot.title,
                lead=names[slot.lead_classroom_id], teacher=users[slot.teacher_id],
                receivers=tuple(names[r] for r in plan.receiver_ids),
                recording_policy=slot.recording_policy, start_mode=slot.start_mode,
            )
        )  # fmt: skip
    return rows


def _download(data: bytes, media_type: str, filename: str) -> Response:
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


@router.get("/timetable.xlsx", responses=ERRORS)
async def export_xlsx(term_id: str, principal: SignedIn, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        term = await fetch_or_404(session, Term, term_id, "term")
        rows = await _rows(session, term_id, principal)
    data = await asyncio.to_thread(write_xlsx, rows, term.name)
    return _download(data, XLSX, f"{term.name}课表.xlsx")


@router.get("/timetable.csv", responses=ERRORS)
async def export_csv(term_id: str, principal: SignedIn, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        term = await fetch_or_404(session, Term, term_id, "term")
        rows = await _rows(session, term_id, principal)
    return _download(write_csv(rows), "text/csv; charset=utf-8", f"{term.name}课表.csv")


@router.post("/timetable", responses=ERRORS)
async def import_timetable(
    term_id: str, file: UploadFile, _: DistrictAdmin, state: State
) -> GenerateOut:
    """Replace the term's timetable with an .xlsx or .csv sheet (columns: see HEADERS).
    District admins only: the sheet replaces every county's slots."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "too_large", "The sheet is larger than 5 MiB.")
    try:
        rows = await asyncio.to_thread(read_sheet, data, file.filename or "")
    except SheetError as exc:
        raise _sheet_error(exc) from None
    async with state.db.sessions.begin() as session:
        await fetch_or_404(session, Term, term_id, "term")
        rooms = await _rooms(session)
        teachers = {
            a.username: a
            for a in await session.scalars(
                select(Account).where(
                    Account.role == AccountRole.TEACHER.value, Account.active.is_(True)
                )
            )
        }
        existing = {
            (s.weekday, s.period, s.lead_classroom_id): s
            for s in await session.scalars(
                select(TimetableSlot).where(TimetableSlot.term_id == term_id)
            )
        }
        kept: set[str] = set()
        row_of: dict[str, SheetRow] = {}
        for row in rows:
            lead = rooms.get(row.lead)
            if lead is None:
                raise _sheet_error(cell_error(row.row, 8, f"no classroom {row.lead}"))
            teacher = teachers.get(row.teacher)
            if teacher is None:
                raise _sheet_error(cell_error(row.row, 9, f"no active teacher {row.teacher}"))
            receiver_ids = []
            for name in row.receivers:
                room = rooms.get(name)
                if room is None or room.id == lead.id or room.id in receiver_ids:
                    problem = "no classroom" if room is None else "twice in the lesson:"
                    raise _sheet_error(cell_error(row.row, 10, f"{problem} {name}"))
                receiver_ids.append(room.id)
            key = (row.weekday, row.period, lead.id)
            slot = existing.get(key)
            if slot is None or slot.id in kept:
                slot = TimetableSlot(term_id=term_id, weekday=row.weekday, period=row.period,
                                     lead_classroom_id=lead.id)  # fmt: skip
                session.add(slot)
            slot.starts, slot.ends = row.starts, row.ends
            slot.subject, slot.grade, slot.title = row.subject, row.grade, row.title
            slot.teacher_id = teacher.id
            slot.recording_policy, slot.start_mode = row.recording_policy, row.start_mode
            await session.flush()
            await _set_receivers(session, slot.id, receiver_ids)
            kept.add(slot.id)
            row_of[slot.id] = row
        gone = [s.id for s in existing.values() if s.id not in kept]
        dropped = 0
        if gone:
            result = await session.execute(
                delete(Lesson).where(
                    Lesson.slot_id.in_(gone), Lesson.state == LessonStatus.SCHEDULED.value
                )
            )
            dropped = result.rowcount  # type: ignore[attr-defined]
            await session.execute(delete(TimetableSlot).where(TimetableSlot.id.in_(gone)))
        plans = [p for _, p in await term_slots(session, term_id)]
        for plan in plans:
            found = slot_clash(plan, plans)
            if found is not None:
                other = found[0]
                raise ApiError(
                    409,
                    "timetable_conflict",
                    f"Rows {row_of[plan.id].row} and {row_of[other.id].row}: "
                    f"{plan.describe()} and {other.describe()} need one classroom or teacher "
                    "at once.",
                )
        out = generated_out(await generate(session, term_id, state.settings.zone))
        out.removed += dropped
        return out

"""/api/classrooms: rooms of a school, lead-capable, receiving or either."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import ADMINS, EVERYONE, ScopedAdmin, SignedIn, access, require_in_scope
from server.api.errors import ApiError, ErrorResponse, not_found
from server.api.schemas import ClassroomIn, ClassroomOut, ClassroomPatch
from server.auth import Principal, State
from server.db.models import Classroom, Lesson, lesson_receivers

router = APIRouter(prefix="/classrooms", tags=["classrooms"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


async def _name_taken(
    session: AsyncSession, school_id: str, name: str, except_id: str | None = None
) -> bool:
    query = select(Classroom.id).where(Classroom.school_id == school_id, Classroom.name == name)
    if except_id is not None:
        query = query.where(Classroom.id != except_id)
    return (await session.scalar(query)) is not None


ClassroomReader = Annotated[Principal, access(EVERYONE, resource="classroom")]
ClassroomManager = Annotated[Principal, access(ADMINS, resource="classroom", manage=True)]


def _taken() -> ApiError:
    return ApiError(409, "classroom_name_taken", "The school already has a classroom of that name.")


@router.get("", responses=ERRORS)
async def list_classrooms(
    principal: SignedIn, state: State, school_id: str | None = None
) -> list[ClassroomOut]:
    """The classrooms of the schools in the caller's scope."""
    async with state.db.sessions.begin() as session:
        query = (
            select(Classroom)
            .where(principal.scope.school_clause(Classroom.school_id))
            .order_by(Classroom.school_id, Classroom.name)
        )
        if school_id is not None:
            query = query.where(Classroom.school_id == school_id)
        return [ClassroomOut.model_validate(row) for row in await session.scalars(query)]


@router.get("/{classroom_id}", responses=ERRORS)
async def get_classroom(classroom_id: str, _: ClassroomReader, state: State) -> ClassroomOut:
    async with state.db.sessions.begin() as session:
        classroom = await session.get(Classroom, classroom_id)
        if classroom is None:
            raise not_found("classroom")
        return ClassroomOut.model_validate(classroom)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_classroom(body: ClassroomIn, principal: ScopedAdmin, state: State) -> ClassroomOut:
    async with state.db.sessions.begin() as session:
        await require_in_scope(session, principal, "school", body.school_id, manage=True)
        if await _name_taken(session, body.school_id, body.name):
            raise _taken()
        classroom = Classroom(school_id=body.school_id, name=body.name, kind=body.kind.value)
        session.add(classroom)
        await session.flush()
        return ClassroomOut.model_validate(classroom)


@router.patch("/{classroom_id}", responses=ERRORS)
async def update_classroom(
    classroom_id: str, body: ClassroomPatch, _: ClassroomManager, state: State
) -> ClassroomOut:
    async with state.db.sessions.begin() as session:
        classroom = await session.get(Classroom, classroom_id)
        if classroom is None:
            raise not_found("classroom")
        if body.name is not None and await _name_taken(
            session, classroom.school_id, body.name, except_id=classroom_id
        ):
            raise _taken()
        for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
            setattr(classroom, field, value)
        await session.flush()
        return ClassroomOut.model_validate(classroom)


@router.delete("/{classroom_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_classroom(classroom_id: str, _: ClassroomManager, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        classroom = await session.get(Classroom, classroom_id)
        if classroom is None:
            raise not_found("classroom")
        in_use = await session.scalar(
            select(
                exists().where(Lesson.lead_classroom_id == classroom_id)
                | exists().where(lesson_receivers.c.classroom_id == classroom_id)
            )
        )
        if in_use:
            raise ApiError(
                409, "classroom_in_use", "Lessons use this classroom; it cannot be deleted."
            )
        await session.delete(classroom)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

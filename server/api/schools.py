"""/api/schools: 中心校 and 教学点. Everyone signed in reads; admins change."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import exists, select

from server.api.errors import ApiError, ErrorResponse, not_found
from server.api.schemas import SchoolIn, SchoolOut, SchoolPatch
from server.auth import AdminPrincipal, CurrentPrincipal, State
from server.db.models import Account, Classroom, School

router = APIRouter(prefix="/schools", tags=["schools"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


@router.get("", responses=ERRORS)
async def list_schools(_: CurrentPrincipal, state: State) -> list[SchoolOut]:
    async with state.db.sessions.begin() as session:
        rows = await session.scalars(select(School).order_by(School.name))
        return [SchoolOut.model_validate(row) for row in rows]


@router.get("/{school_id}", responses=ERRORS)
async def get_school(school_id: str, _: CurrentPrincipal, state: State) -> SchoolOut:
    async with state.db.sessions.begin() as session:
        school = await session.get(School, school_id)
        if school is None:
            raise not_found("school")
        return SchoolOut.model_validate(school)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_school(body: SchoolIn, _: AdminPrincipal, state: State) -> SchoolOut:
    async with state.db.sessions.begin() as session:
        school = School(name=body.name, kind=body.kind.value, district=body.district)
        session.add(school)
        await session.flush()
        return SchoolOut.model_validate(school)


@router.patch("/{school_id}", responses=ERRORS)
async def update_school(
    school_id: str, body: SchoolPatch, _: AdminPrincipal, state: State
) -> SchoolOut:
    async with state.db.sessions.begin() as session:
        school = await session.get(School, school_id)
        if school is None:
            raise not_found("school")
        for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
            setattr(school, field, value)
        await session.flush()
        return SchoolOut.model_validate(school)


@router.delete("/{school_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_school(school_id: str, _: AdminPrincipal, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        school = await session.get(School, school_id)
        if school is None:
            raise not_found("school")
        in_use = await session.scalar(
            select(
                exists().where(Classroom.school_id == school_id)
                | exists().where(Account.school_id == school_id)
            )
        )
        if in_use:
            raise ApiError(
                409,
                "school_in_use",
                "The school still has classrooms or accounts; move them first.",
            )
        await session.delete(school)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""/api/schools: 中心校, 教学点 and the other kinds, each in a county (or directly under the
district). Everyone reads the schools of his scope; admins change those they manage: a
county admin his county's schools, a school admin his own school (not its county)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import ADMINS, EVERYONE, SignedIn, access, require_in_scope
from server.api.errors import ApiError, ErrorResponse, forbidden, not_found
from server.api.schemas import SchoolIn, SchoolOut, SchoolPatch
from server.auth import Principal, State
from server.db.models import Account, Classroom, County, School
from server.scope import ScopeLevel

router = APIRouter(prefix="/schools", tags=["schools"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}

SchoolReader = Annotated[Principal, access(EVERYONE, resource="school")]
SchoolManager = Annotated[Principal, access(ADMINS, resource="school", manage=True)]
CountyAdmin = Annotated[Principal, access(ADMINS, level=ScopeLevel.COUNTY)]
CountyManager = Annotated[
    Principal, access(ADMINS, level=ScopeLevel.COUNTY, resource="school", manage=True)
]


def school_out(school: School, county: str | None) -> SchoolOut:
    return SchoolOut(
        id=school.id,
        name=school.name,
        kind=school.kind,  # type: ignore[arg-type]
        county_id=school.county_id,
        county=county or "",
        district=county or "",
        created_at=school.created_at,
    )


async def _load(session: AsyncSession, school_id: str) -> tuple[School, str | None]:
    row = (
        await session.execute(
            select(School, County.name)
            .outerjoin(County, County.id == School.county_id)
            .where(School.id == school_id)
        )
    ).first()
    if row is None:
        raise not_found("school")
    return row[0], row[1]


async def _county_named(session: AsyncSession, principal: Principal, name: str) -> str:
    """The deprecated `district` text: the county of that name, made by a district admin
    when it does not exist yet (as the migration turned free text into counties)."""
    county_id = await session.scalar(select(County.id).where(County.name == name))
    if county_id is None:
        if not principal.is_district_admin:
            raise not_found("county")
        county = County(name=name)
        session.add(county)
        await session.flush()
        county_id = county.id
    return county_id


async def target_county(
    session: AsyncSession, principal: Principal, county_id: str | None, district: str | None
) -> str | None:
    """The county a school is put into: named by id, or (deprecated) by name; a county
    admin's school always goes into his own county. 404 county_not_found when the county
    does not exist or lies outside the caller's scope."""
    if county_id is None and district:
        county_id = await _county_named(session, principal, district)
    if county_id is None:
        if principal.scope.level is ScopeLevel.DISTRICT:
            return None  # 州直属
        county_id = principal.scope.county_id
        if county_id is None:
            raise forbidden("Only a district admin places a school directly under the district.")
    await require_in_scope(session, principal, "county", county_id, manage=True)
    return county_id


@router.get("", responses=ERRORS)
async def list_schools(
    principal: SignedIn, state: State, county_id: str | None = None
) -> list[SchoolOut]:
    """The schools in the caller's scope, by name; `county_id` narrows to one county."""
    query = (
        select(School, County.name)
        .outerjoin(County, County.id == School.county_id)
        .where(principal.scope.school_clause(School.id))
        .order_by(School.name)
    )
    if county_id is not None:
        query = query.where(School.county_id == county_id)
    async with state.db.sessions.begin() as session:
        return [school_out(school, county) for school, county in await session.execute(query)]


@router.get("/{school_id}", responses=ERRORS)
async def get_school(school_id: str, _: SchoolReader, state: State) -> SchoolOut:
    async with state.db.sessions.begin() as session:
        return school_out(*await _load(session, school_id))


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_school(body: SchoolIn, principal: CountyAdmin, state: State) -> SchoolOut:
    async with state.db.sessions.begin() as session:
        county_id = await target_county(session, principal, body.county_id, body.district)
        school = School(name=body.name, kind=body.kind.value, county_id=county_id)
        session.add(school)
        await session.flush()
        return school_out(*await _load(session, school.id))


@router.patch("/{school_id}", responses=ERRORS)
async def update_school(
    school_id: str, body: SchoolPatch, principal: SchoolManager, state: State
) -> SchoolOut:
    """Rename, change its kind, or move it to another county (within the caller's scope)."""
    changes = body.model_dump(exclude_unset=True)
    async with state.db.sessions.begin() as session:
        school, _ = await _load(session, school_id)
        if changes.get("county_id") is not None or changes.get("district"):
            if principal.scope.level is ScopeLevel.SCHOOL:
                raise forbidden("A school admin cannot move his school to another county.")
            school.county_id = await target_county(
                session, principal, changes.get("county_id"), changes.get("district")
            )
        for field in ("name", "kind"):
            if changes.get(field) is not None:
                setattr(school, field, changes[field])
        await session.flush()
        return school_out(*await _load(session, school_id))


@router.delete("/{school_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_school(school_id: str, _: CountyManager, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        school, _ = await _load(session, school_id)
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

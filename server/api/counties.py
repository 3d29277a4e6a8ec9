"""/api/counties: the counties and county-level cities (县/市) of the district (州).

Everyone reads the counties of his scope (a district account all of them, others their
own); only a district admin adds, renames or removes one. A county with schools or
accounts cannot be removed (409 county_in_use).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import ADMINS, EVERYONE, DistrictAdmin, SignedIn, access
from server.api.crud import ERRORS, fetch_or_404
from server.api.errors import ApiError
from server.api.schemas import CountyIn, CountyOut, CountyPatch
from server.auth import Principal, State
from server.db.models import Account, County, School
from server.scope import ScopeLevel

router = APIRouter(prefix="/counties", tags=["counties"])

CountyReader = Annotated[Principal, access(EVERYONE, resource="county")]
CountyEditor = Annotated[
    Principal, access(ADMINS, level=ScopeLevel.DISTRICT, resource="county", manage=True)
]


def _taken(name: str) -> ApiError:
    return ApiError(409, "county_name_taken", f"A county named {name} exists already.")


async def _out(session: AsyncSession, county: County) -> CountyOut:
    schools = await session.scalar(
        select(func.count()).select_from(School).where(School.county_id == county.id)
    )
    out = CountyOut.model_validate(county)
    out.schools = int(schools or 0)
    return out


async def _name_free(session: AsyncSession, name: str, except_id: str | None = None) -> None:
    query = select(County.id).where(County.name == name)
    if except_id is not None:
        query = query.where(County.id != except_id)
    if await session.scalar(query) is not None:
        raise _taken(name)


@router.get("", responses=ERRORS)
async def list_counties(principal: SignedIn, state: State) -> list[CountyOut]:
    counts = select(School.county_id, func.count().label("n")).group_by(School.county_id).subquery()
    query = (
        select(County, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.county_id == County.id)
        .where(principal.scope.county_clause(County.id))
        .order_by(County.name)
    )
    async with state.db.sessions.begin() as session:
        rows = await session.execute(query)
        return [
            CountyOut.model_validate(county).model_copy(update={"schools": int(n)})
            for county, n in rows
        ]


@router.get("/{county_id}", responses=ERRORS)
async def get_county(county_id: str, _: CountyReader, state: State) -> CountyOut:
    async with state.db.sessions.begin() as session:
        return await _out(session, await fetch_or_404(session, County, county_id, "county"))


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_county(body: CountyIn, _: DistrictAdmin, state: State) -> CountyOut:
    try:
        async with state.db.sessions.begin() as session:
            await _name_free(session, body.name)
            county = County(name=body.name, code=body.code)
            session.add(county)
            await session.flush()
            return await _out(session, county)
    except IntegrityError:  # the same name added at the same moment
        raise _taken(body.name) from None


@router.patch("/{county_id}", responses=ERRORS)
async def update_county(
    county_id: str, body: CountyPatch, _: CountyEditor, state: State
) -> CountyOut:
    async with state.db.sessions.begin() as session:
        county = await fetch_or_404(session, County, county_id, "county")
        if body.name is not None:
            await _name_free(session, body.name, except_id=county_id)
            county.name = body.name
        if body.code is not None:
            county.code = body.code
        await session.flush()
        return await _out(session, county)


@router.delete("/{county_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_county(county_id: str, _: CountyEditor, state: State) -> Response:
    async with state.db.sessions.begin() as session:
        county = await fetch_or_404(session, County, county_id, "county")
        in_use = await session.scalar(
            select(
                exists().where(School.county_id == county_id)
                | exists().where(Account.county_id == county_id)
            )
        )
        if in_use:
            raise ApiError(
                409, "county_in_use", "The county still has schools or accounts; move them first."
            )
        await session.delete(county)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

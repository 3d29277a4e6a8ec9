"""/api/rubrics: the district's evaluation rubrics (评课量表). Everyone signed in reads;
district admins create, edit (each edit writes the next version; old versions are kept) and
choose the one in use (one rubric for the whole district). docs/library.md "Rubrics"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from server.api.access import DistrictAdmin, SignedIn, access
from server.api.errors import ApiError, ErrorResponse, forbidden, not_found
from server.api.join import usable_link
from server.auth import State
from server.db import lengths
from server.db.models import JoinLink
from server.db.rubric_models import Rubric, RubricVersion
from server.rubrics import (
    ITEMS_LIMIT,
    SCALE_MAX_LIMIT,
    RubricError,
    in_use,
    newest_version,
    spec_of,
    version,
)
from signaling.grants import Role

router = APIRouter(prefix="/rubrics", tags=["rubrics"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class RubricItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Left out: the server names the item (item1, item2 ...); give it to keep a key.
    key: Key | None = None
    label: Label
    weight: int = Field(default=1, ge=1, le=100)


class RubricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.NAME)
    ]
    scale_max: int = Field(ge=1, le=SCALE_MAX_LIMIT)
    items: list[RubricItemIn] = Field(min_length=1, max_length=ITEMS_LIMIT)


class RubricOut(BaseModel):
    version_id: str
    rubric_id: str
    name: str
    version: int
    scale_min: int
    scale_max: int
    items: list[dict[str, Any]]
    in_use: bool


class RubricHistoryOut(RubricOut):
    """A rubric's newest version with the numbers and ids of all its versions, oldest first."""

    versions: list[dict[str, Any]]


def _items(body: RubricIn) -> list[dict[str, Any]]:
    labels = [i.label for i in body.items]
    if len(set(labels)) != len(labels):
        raise ApiError(422, "rubric_duplicate_item", "Two items have the same label.")
    given = [i.key for i in body.items if i.key]
    if len(set(given)) != len(given):
        raise ApiError(422, "rubric_duplicate_item", "Two items have the same key.")
    taken = set(given)
    out = []
    n = 0
    for item in body.items:
        key = item.key
        while key is None or (item.key is None and key in taken):
            n += 1
            key = f"item{n}"
        taken.add(key)
        out.append({"key": key, "label": item.label, "weight": item.weight})
    return out


async def _name_free(session: AsyncSession, name: str, rubric_id: str | None) -> None:
    other = await session.scalar(select(Rubric.id).where(Rubric.name == name))
    if other is not None and other != rubric_id:
        raise ApiError(409, "rubric_name_taken", f"A rubric is already called {name}.")


async def _history(session: AsyncSession, rubric: Rubric) -> dict[str, Any]:
    rows = await session.scalars(
        select(RubricVersion)
        .where(RubricVersion.rubric_id == rubric.id)
        .order_by(RubricVersion.version)
    )
    all_versions = list(rows)
    spec = spec_of(rubric, all_versions[-1])
    return {
        **spec.out(),
        "versions": [
            {
                "version_id": v.id,
                "version": v.version,
                "created_at": v.created_at,
                "author": v.author,
            }
            for v in all_versions
        ],
    }


def _refused(exc: RubricError) -> ApiError:
    status_code = 404 if exc.code in ("rubric_not_found", "unknown_rubric_version") else 422
    return ApiError(status_code, exc.code, exc.message)


@router.get("/current", response_model=RubricOut, responses=ERRORS)
async def current_rubric(_: SignedIn, state: State) -> dict[str, Any]:
    """The rubric the pages score on now (its newest version)."""
    async with state.db.sessions.begin() as session:
        try:
            return (await in_use(session)).out()
        except RubricError as exc:
            raise _refused(exc) from None


@router.get("/versions/{version_id}", response_model=RubricOut, responses=ERRORS)
async def rubric_version(version_id: str, _: SignedIn, state: State) -> dict[str, Any]:
    async with state.db.sessions.begin() as session:
        try:
            return (await version(session, version_id)).out()
        except RubricError as exc:
            raise _refused(exc) from None


@router.get(
    "/for-link/{code}",
    response_model=RubricOut,
    responses=ERRORS | {410: {"model": ErrorResponse}},
    dependencies=[access(None, why="the patrol link is the credential, as for join")],
)
async def rubric_for_link(
    code: str,
    state: State,
    version_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """For a patrol opened from its link, not signed in: the rubric in use (or the version
    a note names), so its live notes are scored like a signed-in inspector's. Only a patrol
    link that join would accept: 404 link_not_found, 410 link_revoked / link_expired, 403
    forbidden for a classroom's link (classroom pages do not score)."""
    async with state.db.sessions.begin() as session:
        link = await session.scalar(
            select(JoinLink).where(JoinLink.code == code).options(joinedload(JoinLink.account))
        )
        link = usable_link(link)
        if link.role != Role.PATROL.value:
            raise forbidden("Only a patrol link reads the rubric.")
        try:
            found = await (in_use(session) if version_id is None else version(session, version_id))
        except RubricError as exc:
            raise _refused(exc) from None
        return found.out()


@router.get("", response_model=list[RubricHistoryOut], responses=ERRORS)
async def list_rubrics(_: SignedIn, state: State) -> list[dict[str, Any]]:
    async with state.db.sessions.begin() as session:
        rubrics = await session.scalars(
            select(Rubric).order_by(Rubric.in_use.desc(), Rubric.created_at, Rubric.name)
        )
        return [await _history(session, r) for r in rubrics]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RubricHistoryOut, responses=ERRORS
)
async def create_rubric(body: RubricIn, admin: DistrictAdmin, state: State) -> dict[str, Any]:
    items = _items(body)
    async with state.db.sessions.begin() as session:
        await _name_free(session, body.name, None)
        rubric = Rubric(name=body.name, in_use=False)
        session.add(rubric)
        await session.flush()
        session.add(
            RubricVersion(
                rubric_id=rubric.id,
                version=1,
                scale_max=body.scale_max,
                items=items,
                author=admin.display_name,
            )
        )
        await session.flush()
        return await _history(session, rubric)


@router.put("/{rubric_id}", response_model=RubricHistoryOut, responses=ERRORS)
async def edit_rubric(
    rubric_id: str, body: RubricIn, admin: DistrictAdmin, state: State
) -> dict[str, Any]:
    """Writes the rubric's next version (evaluations keep the version they were scored on);
    an edit that changes nothing writes nothing."""
    items = _items(body)
    async with state.db.sessions.begin() as session:
        rubric = await session.get(Rubric, rubric_id, with_for_update=True)
        if rubric is None:
            raise not_found("rubric")
        await _name_free(session, body.name, rubric.id)
        rubric.name = body.name
        newest = await newest_version(session, rubric)
        if newest.items != items or newest.scale_max != body.scale_max:
            number = await session.scalar(
                select(func.max(RubricVersion.version)).where(RubricVersion.rubric_id == rubric.id)
            )
            session.add(
                RubricVersion(
                    rubric_id=rubric.id,
                    version=int(number or 0) + 1,
                    scale_max=body.scale_max,
                    items=items,
                    author=admin.display_name,
                )
            )
        await session.flush()
        return await _history(session, rubric)


@router.post("/{rubric_id}/use", response_model=RubricHistoryOut, responses=ERRORS)
async def use_rubric(rubric_id: str, _: DistrictAdmin, state: State) -> dict[str, Any]:
    """Makes this rubric the one live notes, replay evaluations and reviews score on."""
    async with state.db.sessions.begin() as session:
        rubric = await session.get(Rubric, rubric_id)
        if rubric is None:
            raise not_found("rubric")
        await session.execute(update(Rubric).where(Rubric.id != rubric.id).values(in_use=False))
        rubric.in_use = True
        await session.flush()
        return await _history(session, rubric)

"""Who may call a route, and on what: the one access dependency every route declares.

Deny by default. A route names its rule with `access(...)`: the roles it admits (or none for
a route whose credential is not an account: sign-in, join links), the narrowest account
scope it admits (`level`), and the resource its path names (`resource`), which must lie in
the caller's scope (server/scope.py). A resource outside the caller's scope answers the
same 404 as one that does not exist, so a county admin learns nothing of another county.
An HTTP route without a rule is refused (403 access_undeclared) before it runs, and the
authorization matrix test fails for it (tests/server/test_scope_matrix.py).

Routes filter the rows they list with the caller's scope (Principal.scope's SQL clauses)
and check the resources a body names with `require_in_scope`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from server.api.errors import ApiError, forbidden, not_found
from server.auth import Principal, current_principal
from server.db.calendar_models import TimetableSlot, slot_receivers
from server.db.ingest_models import WhipCredential
from server.db.models import (
    Account,
    AccountRole,
    Classroom,
    County,
    Lesson,
    LibraryRecording,
    School,
    lesson_receivers,
)
from server.db.terminal_models import ClassroomTerminal
from server.scope import DISTRICT_HOME, Home, ScopeLevel
from server.state import AppState, get_state

log = logging.getLogger("tongke.access")

ADMINS = frozenset({AccountRole.ADMIN})
PLANNERS = frozenset({AccountRole.ADMIN, AccountRole.TEACHER})
EVERYONE = frozenset(AccountRole)


@dataclass(frozen=True, slots=True)
class Homes:
    """Where a resource lies: `owner` decides who manages it, `touched` who may read it."""

    owner: Home
    touched: tuple[Home, ...] = ()
    # An account that manages it whatever its scope (a lesson's own teacher).
    owner_account_id: str | None = None


Resolver = Callable[[AsyncSession, str], Awaitable[Homes | None]]


async def _school_home(session: AsyncSession, school_id: str) -> Home | None:
    county_id = (
        await session.execute(select(School.county_id).where(School.id == school_id))
    ).first()
    return None if county_id is None else Home(county_id[0], school_id)


async def _county(session: AsyncSession, county_id: str) -> Homes | None:
    found = await session.scalar(select(County.id).where(County.id == county_id))
    return None if found is None else Homes(Home(county_id))


async def _school(session: AsyncSession, school_id: str) -> Homes | None:
    home = await _school_home(session, school_id)
    return None if home is None else Homes(home)


async def _classroom(session: AsyncSession, classroom_id: str) -> Homes | None:
    row = (
        await session.execute(
            select(School.county_id, School.id)
            .join(Classroom, Classroom.school_id == School.id)
            .where(Classroom.id == classroom_id)
        )
    ).first()
    return None if row is None else Homes(Home(row[0], row[1]))


async def _account(session: AsyncSession, account_id: str) -> Homes | None:
    row = (
        await session.execute(
            select(Account.county_id, Account.school_id, School.county_id)
            .outerjoin(School, School.id == Account.school_id)
            .where(Account.id == account_id)
        )
    ).first()
    if row is None:
        return None
    county_id, school_id, school_county_id = row
    if school_id is not None:
        return Homes(Home(school_county_id, school_id))
    return Homes(Home(county_id) if county_id is not None else DISTRICT_HOME)


async def _rooms(session: AsyncSession, classroom_ids: list[str]) -> dict[str, Home]:
    rows = await session.execute(
        select(Classroom.id, School.county_id, School.id)
        .join(School, School.id == Classroom.school_id)
        .where(Classroom.id.in_(classroom_ids))
    )
    return {room: Home(county, school) for room, county, school in rows}


async def _lesson(session: AsyncSession, lesson_id: str) -> Homes | None:
    row = (
        await session.execute(
            select(Lesson.lead_classroom_id, Lesson.teacher_id).where(Lesson.id == lesson_id)
        )
    ).first()
    if row is None:
        return None
    lead_id, teacher_id = row
    receivers = list(
        await session.scalars(
            select(lesson_receivers.c.classroom_id).where(lesson_receivers.c.lesson_id == lesson_id)
        )
    )
    homes = await _rooms(session, [lead_id, *receivers])
    touched = tuple(homes[r] for r in receivers if r in homes)
    return Homes(homes[lead_id], touched, owner_account_id=teacher_id)


async def _slot(session: AsyncSession, slot_id: str) -> Homes | None:
    lead_id = await session.scalar(
        select(TimetableSlot.lead_classroom_id).where(TimetableSlot.id == slot_id)
    )
    if lead_id is None:
        return None
    receivers = list(
        await session.scalars(
            select(slot_receivers.c.classroom_id).where(slot_receivers.c.slot_id == slot_id)
        )
    )
    homes = await _rooms(session, [lead_id, *receivers])
    return Homes(homes[lead_id], tuple(homes[r] for r in receivers if r in homes))


async def _recording(session: AsyncSession, recording_id: str) -> Homes | None:
    row = (
        await session.execute(
            select(LibraryRecording.lesson_id, LibraryRecording.teacher_id).where(
                LibraryRecording.id == recording_id
            )
        )
    ).first()
    if row is None:
        return None
    lesson_id, teacher_id = row
    lesson = await _lesson(session, lesson_id) if lesson_id is not None else None
    if lesson is None:  # catalogued without its lesson (or the lesson was deleted)
        return Homes(DISTRICT_HOME, owner_account_id=teacher_id)
    return Homes(lesson.owner, lesson.touched, owner_account_id=teacher_id)


async def _whip_credential(session: AsyncSession, credential_id: str) -> Homes | None:
    classroom_id = await session.scalar(
        select(WhipCredential.classroom_id).where(WhipCredential.id == credential_id)
    )
    return None if classroom_id is None else await _classroom(session, classroom_id)


async def _terminal(session: AsyncSession, terminal_id: str) -> Homes | None:
    classroom_id = await session.scalar(
        select(ClassroomTerminal.classroom_id).where(ClassroomTerminal.id == terminal_id)
    )
    return None if classroom_id is None else await _classroom(session, classroom_id)


# resource kind -> (the path parameter naming it, how to find where it lies)
RESOURCES: dict[str, tuple[str, Resolver]] = {
    "county": ("county_id", _county),
    "school": ("school_id", _school),
    "classroom": ("classroom_id", _classroom),
    "account": ("account_id", _account),
    "lesson": ("lesson_id", _lesson),
    "slot": ("slot_id", _slot),
    "recording": ("recording_id", _recording),
    "whip_credential": ("credential_id", _whip_credential),
    "terminal": ("terminal_id", _terminal),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """What a route needs. roles None: no account at all (the credential is something
    else, or there is nothing to protect); `why` says which."""

    roles: frozenset[AccountRole] | None
    level: ScopeLevel = ScopeLevel.SCHOOL
    resource: str | None = None
    manage: bool = False
    why: str = ""

    def admits_role(self, role: AccountRole) -> bool:
        return self.roles is not None and role in self.roles


def covers(principal: Principal, homes: Homes, *, manage: bool) -> bool:
    """Whether the principal may reach a resource lying at `homes`."""
    if homes.owner_account_id is not None and homes.owner_account_id == principal.account_id:
        return True
    if manage:
        return principal.scope.covers(homes.owner)
    return any(principal.scope.covers(h, read=True) for h in (homes.owner, *homes.touched))


async def require_in_scope(
    session: AsyncSession, principal: Principal, kind: str, resource_id: str, *, manage: bool
) -> Homes:
    """The resource a request names (path or body) exists and lies in the caller's scope;
    404 `<kind>_not_found` otherwise, the same answer whether absent or out of scope."""
    _, resolve = RESOURCES[kind]
    homes = await resolve(session, resource_id)
    if homes is None or not covers(principal, homes, manage=manage):
        raise not_found(kind)
    return homes


def access(
    roles: frozenset[AccountRole] | None,
    *,
    level: ScopeLevel = ScopeLevel.SCHOOL,
    resource: str | None = None,
    manage: bool = False,
    why: str = "",
) -> Any:
    """The dependency declaring a route's rule; it answers the signed-in Principal (or None
    for a route without an account)."""
    rule = Rule(roles, level, resource, manage, why)
    if roles is None and not why:
        raise ValueError("a route open without an account must say why")
    if resource is not None and resource not in RESOURCES:
        raise ValueError(f"unknown resource kind {resource!r}")

    if roles is None:

        async def open_guard() -> None:
            return None

        open_guard.access_rule = rule  # type: ignore[attr-defined]
        return Depends(open_guard)

    async def guard(
        request: Request,
        principal: Annotated[Principal, Depends(current_principal)],
        state: Annotated[AppState, Depends(get_state)],
    ) -> Principal:
        if not rule.admits_role(principal.role):
            raise forbidden(f"This needs the role {' or '.join(sorted(rule.roles or ()))}.")
        if not principal.scope.at_least(rule.level):
            raise forbidden(f"This needs an account of {rule.level.value} scope.")
        if rule.resource is not None:
            param, _ = RESOURCES[rule.resource]
            async with state.db.sessions.begin() as session:
                await require_in_scope(
                    session, principal, rule.resource, request.path_params[param],
                    manage=rule.manage,
                )  # fmt: skip
        return principal

    guard.access_rule = rule  # type: ignore[attr-defined]
    return Depends(guard)


def route_rule(route: Any) -> Rule | None:
    """The rule a route declares (searched through its dependency tree once, then kept on
    the route object itself: a cache keyed by id() would hand a new app's route the rule of
    a collected one that had the same id, as tests that make many apps found)."""
    if "_access_rule" in vars(route):
        return vars(route)["_access_rule"]  # type: ignore[no-any-return]
    root = getattr(route, "dependant", None)
    rule: Rule | None = None
    stack = list(root.dependencies) if root is not None else []
    while stack and rule is None:
        dependant = stack.pop()
        rule = getattr(dependant.call, "access_rule", None)
        stack.extend(dependant.dependencies)
    route._access_rule = rule
    return rule


async def require_declared_access(connection: HTTPConnection) -> None:
    """App-wide: an HTTP route that declares no rule is refused before it runs."""
    if connection.scope["type"] != "http":
        return  # the WebSocket's credential is the join token (signaling/grants.py)
    route = connection.scope.get("route")
    if route is None or route_rule(route) is not None:
        return
    path = getattr(route, "path", "?")
    log.error("route %s declares no access rule; refused (server/api/access.py)", path)
    raise ApiError(
        403,
        "access_undeclared",
        "This route declares no access rule and is refused until it does.",
    )


# Shorthands for the common rules ----------------------------------------------------------

SignedIn = Annotated[Principal, access(EVERYONE)]
DistrictAdmin = Annotated[Principal, access(ADMINS, level=ScopeLevel.DISTRICT)]
ScopedAdmin = Annotated[Principal, access(ADMINS)]

"""/api/reports: 督导 reports for the caller's scope and a period (admins and inspectors).

`GET /api/reports/summary` answers the dashboard: totals, one row per county / school /
subject / teacher (`by`), weekly trends, the teaching points' hours and attendance, the
connection quality distribution and progress toward the exemplary-lesson target.
`GET /api/reports/lessons` drills down to the lessons of a county or school.
`GET /api/reports/summary.xlsx` and `.csv` export the same figures with Chinese headers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import access, require_in_scope
from server.api.crud import ERRORS, fetch_or_404
from server.api.errors import ApiError
from server.auth import Principal, State
from server.db.calendar_models import Term
from server.db.models import (
    AccountRole,
    County,
    School,
    utcnow,
)
from server.district_time import days_span, local_day
from server.reports import export
from server.reports.lessons import lesson_rows
from server.reports.periods import Period, PeriodKind, make_period, month_of, week_of
from server.reports.queries import (
    TEACHING_POINT,
    Figures,
    ReportQuery,
    exemplary_progress,
    names,
    school_kinds,
)
from server.reports.rollup import figures_many
from server.reports.stored_weeks import refresh
from server.scope import ScopeLevel

router = APIRouter(prefix="/reports", tags=["reports"])

# Reports are the supervisors' tool: admins of every level and inspectors, each for his scope.
Supervisor = Annotated[Principal, access(frozenset({AccountRole.ADMIN, AccountRole.INSPECTOR}))]

By = Literal["county", "school", "subject", "teacher"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LESSONS_LIMIT = 500


def _bad(message: str) -> ApiError:
    return ApiError(422, "invalid_period", message)


async def resolve_period(
    session: AsyncSession,
    state: State,
    kind: PeriodKind,
    day: date | None,
    term_id: str | None,
    date_from: date | None,
    date_to: date | None,
) -> Period:
    zone = state.settings.zone
    try:
        if kind is PeriodKind.TERM:
            if term_id is None:
                raise _bad("A term report names the term (term_id).")
            term = await fetch_or_404(session, Term, term_id, "term")
            return make_period(PeriodKind.TERM, term.first_day, term.last_day, zone)
        if kind is PeriodKind.CUSTOM:
            if date_from is None or date_to is None:
                raise _bad("A custom period names date_from and date_to.")
            return make_period(PeriodKind.CUSTOM, date_from, date_to, zone)
        today = day or local_day(utcnow(), zone)
        return week_of(today, zone) if kind is PeriodKind.WEEK else month_of(today, zone)
    except ValueError as exc:
        raise _bad(exc.args[1]) from None


async def scope_schools(
    session: AsyncSession, principal: Principal, county_id: str | None, school_id: str | None
) -> tuple[Select[tuple[str]] | None, dict[str, Any]]:
    """The schools the report covers (the caller's scope, narrowed to a county or a school
    inside it; 404 when that lies outside) and how the report names its scope."""
    scope = principal.scope
    if school_id is not None:
        await require_in_scope(session, principal, "school", school_id, manage=False)
        school = await session.get(School, school_id)
        assert school is not None
        ids = select(School.id).where(School.id == school_id)
        return ids, {"level": "school", "county_id": school.county_id, "school_id": school_id,
                     "name": school.name}  # fmt: skip
    if county_id is not None:
        await require_in_scope(session, principal, "county", county_id, manage=False)
        county = await session.get(County, county_id)
        assert county is not None
        ids = select(School.id).where(School.county_id == county_id, scope.school_clause(School.id))
        return ids, {"level": "county", "county_id": county_id, "school_id": None,
                     "name": county.name}  # fmt: skip
    name = "全州"
    if scope.level is ScopeLevel.COUNTY:
        name = (await session.get(County, scope.county_id)).name  # type: ignore[union-attr]
    elif scope.level is ScopeLevel.SCHOOL:
        name = (await session.get(School, scope.school_id)).name  # type: ignore[union-attr]
    return scope.school_ids(), {
        "level": scope.level.value,
        "county_id": scope.county_id,
        "school_id": scope.school_id,
        "name": name,
    }


def default_by(level: str) -> str:
    return {"district": "county", "county": "school", "school": "subject"}[level]


def _target(state: State, mine: int, district: int) -> dict[str, Any]:
    settings = state.settings
    start = settings.exemplary_target_start
    end = date(start.year + settings.exemplary_target_years, start.month, start.day)
    today = local_day(utcnow(), settings.zone)
    elapsed = min(max((today - start).days, 0), (end - start).days) / max((end - start).days, 1)
    return {
        "goal": settings.exemplary_target,
        "start": start,
        "end": end,
        "exemplary": mine,
        "district_exemplary": district,
        "progress": round(district / settings.exemplary_target, 4),
        "expected_by_now": round(settings.exemplary_target * elapsed),
    }


def report_query(state: State, school_ids: Any, period: Period) -> ReportQuery:
    """What to report on: the schools (a select; None: all) in the period, as of now."""
    return ReportQuery(
        school_ids=school_ids,
        period=period,
        now=utcnow(),
        on_time_grace_s=state.settings.report_on_time_grace_s,
        weeks=period.weeks(state.settings.zone),
    )


async def build_summary(
    session: AsyncSession,
    state: State,
    principal: Principal,
    period: Period,
    county_id: str | None,
    school_id: str | None,
    by: str | None,
) -> dict[str, Any]:
    school_ids, scope = await scope_schools(session, principal, county_id, school_id)
    zone = state.settings.zone
    q = report_query(state, school_ids, period)
    group = by or default_by(scope["level"])
    # One pass per side for total, county, school and week (summed up from schools by week).
    every = await figures_many(session, q, sorted({"total", group, "week", "school"}))
    total = every["total"].get("total", Figures(key="total"))
    grouped = every[group]
    labels = await names(session, group, list(grouped))
    rows = []
    for key, row in grouped.items():
        row.name = labels.get(key or "", "") if key else "（未分县）" if group == "county" else ""
        rows.append(row.out())
    rows.sort(key=lambda r: (-(r["scheduled"] + r["expected"]), r["name"]))
    weekly = every["week"]
    by_school = every["school"]
    kinds = await school_kinds(session, [k for k in by_school if k])
    school_names = labels if group == "school" else await names(session, "school", list(by_school))
    points = [
        {
            "school_id": key,
            "name": school_names.get(key, ""),
            "county": kinds[key][1],
            "hours": round(row.received_hours, 2),
            "expected": row.expected,
            "present": row.present,
            "attendance_rate": row.out()["attendance_rate"],
        }
        for key, row in by_school.items()
        if key in kinds and kinds[key][0] == TEACHING_POINT and row.expected
    ]
    points.sort(key=lambda p: (-p["hours"], p["name"]))
    start = state.settings.exemplary_target_start
    mine, district = await exemplary_progress(
        session, q, start, start, days_span(start, start, zone)[0]
    )
    totals = total.out()
    return {
        "scope": scope,
        "period": {"kind": period.kind.value, "first_day": period.first_day,
                   "last_day": period.last_day},
        "by": group,
        "totals": totals,
        "rows": rows,
        "weekly": [weekly.get(m.isoformat(), Figures(key=m.isoformat())).out()
                   for m, _, _ in q.weeks],
        "teaching_points": points,
        "quality": {band: totals[f"quality_{band}"]
                    for band in ("good", "fair", "poor", "bad", "unknown")},
        "exemplary_target": _target(state, mine, district),
    }  # fmt: skip


PeriodQuery = Annotated[PeriodKind, Query(alias="period")]


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """What every report route is asked: a period, and a county or school of the scope."""

    period: PeriodKind
    day: date | None
    term_id: str | None
    date_from: date | None
    date_to: date | None
    county_id: str | None
    school_id: str | None

    async def span(self, session: AsyncSession, state: State) -> Period:
        return await resolve_period(
            session, state, self.period, self.day, self.term_id, self.date_from, self.date_to
        )


def report_filter(
    period: PeriodQuery = PeriodKind.MONTH,
    day: date | None = None,
    term_id: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    county_id: str | None = None,
    school_id: str | None = None,
) -> ReportFilter:
    return ReportFilter(period, day, term_id, date_from, date_to, county_id, school_id)


Filter = Annotated[ReportFilter, Depends(report_filter)]


async def _summary(
    principal: Principal, state: State, query: ReportFilter, by: By | None
) -> dict[str, Any]:
    async with state.db.sessions.begin() as session:
        span = await query.span(session, state)
    # Stores the period's settled weeks first (its own transaction; server/reports/stored_weeks).
    await refresh(state.db.sessions, report_query(state, None, span))
    async with state.db.sessions.begin() as session:
        return await build_summary(
            session, state, principal, span, query.county_id, query.school_id, by
        )


@router.get("/summary", responses=ERRORS)
async def summary(
    principal: Supervisor, state: State, query: Filter, by: By | None = None
) -> dict[str, Any]:
    """The figures of the caller's scope (or a county or school in it) for a period."""
    return await _summary(principal, state, query, by)


@router.get("/lessons", responses=ERRORS)
async def lessons(principal: Supervisor, state: State, query: Filter) -> dict[str, Any]:
    """The lessons led from the scope (or a county or school in it) in the period, each with
    its figures, by scheduled start (at most 500; `truncated` says when there were more)."""
    async with state.db.sessions.begin() as session:
        span = await query.span(session, state)
        school_ids, scope = await scope_schools(
            session, principal, query.county_id, query.school_id
        )
        rows = await lesson_rows(
            session, school_ids, span, state.settings.report_on_time_grace_s, LESSONS_LIMIT + 1
        )
    return {
        "scope": scope,
        "period": {"kind": span.kind.value, "first_day": span.first_day,
                   "last_day": span.last_day},
        "lessons": rows[:LESSONS_LIMIT],
        "truncated": len(rows) > LESSONS_LIMIT,
    }  # fmt: skip


def _download(data: bytes, media_type: str, filename: str) -> Response:
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


@router.get("/summary.xlsx", responses=ERRORS)
async def summary_xlsx(
    principal: Supervisor, state: State, query: Filter, by: By | None = None
) -> Response:
    """The summary as a workbook: 总览, the breakdown, 周趋势, 教学点 (Chinese headers)."""
    data = await _summary(principal, state, query, by)
    body = await asyncio.to_thread(export.write_xlsx, data)
    return _download(body, XLSX, export.filename(data, "xlsx"))


@router.get("/summary.csv", responses=ERRORS)
async def summary_csv(
    principal: Supervisor, state: State, query: Filter, by: By | None = None
) -> Response:
    """The breakdown rows as CSV (UTF-8 with BOM, so Excel reads the Chinese headers)."""
    data = await _summary(principal, state, query, by)
    return _download(
        export.write_csv(data), "text/csv; charset=utf-8", export.filename(data, "csv")
    )

"""Total, county, school and week figures summed up from (school, week) rows.

The rows come from server/reports/stored_weeks.py (stored for settled weeks, live for the
rest); a county is its schools, the total its counties. Subject and teacher figures need a
pass of their own over the rows (server/reports/queries.figures).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import School
from server.reports.queries import Figures, ReportQuery, figures
from server.reports.sql import for_aggregates
from server.reports.stored_weeks import SUMMED, accumulate, school_week_rows

# What the rollup derives from the (school, week) rows instead of a query each.
ROLLUP = frozenset({"total", "county", "school", "week"})


def _figures(key: str | None, vector: list[Any]) -> Figures:
    named = zip((name for name, _ in SUMMED), vector, strict=True)
    return Figures(key=key, **dict(named))


async def figures_many(
    session: AsyncSession, q: ReportQuery, groups: list[str]
) -> dict[str, dict[str | None, Figures]]:
    """Every figure for several groupings at once (see the module's docstring)."""
    await for_aggregates(session)
    out: dict[str, dict[str | None, Figures]] = {}
    rolled = [g for g in groups if g in ROLLUP]
    if rolled:
        county_of = {
            sid: cid for sid, cid in await session.execute(select(School.id, School.county_id))
        }
        by_school: dict[str | None, list[Any]] = {}
        by_week: dict[str | None, list[Any]] = {}
        for school, week, vector in await school_week_rows(session, q):
            accumulate(by_school, school, vector)
            accumulate(by_week, week, vector)
        by_county: dict[str | None, list[Any]] = {}
        for school, vector in by_school.items():
            accumulate(by_county, county_of.get(school), vector)
        total: dict[str | None, list[Any]] = {}
        for vector in by_county.values():
            accumulate(total, "total", vector)
        sums = {"total": total, "county": by_county, "school": by_school, "week": by_week}
        for group in rolled:
            out[group] = {key: _figures(key, vector) for key, vector in sums[group].items()}
    for group in groups:
        if group not in ROLLUP:
            out[group] = await figures(session, q, group)
    return out

"""Library search, recording scores and the exemplary workflow's rules."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    ExemplaryState,
    ExemplaryStep,
    LibraryEvaluation,
    LibraryRecording,
)
from server.district_time import day_start
from server.rubrics import percent
from server.rubrics import versions as rubric_versions

# Exact-match filters and substring filters (both case-insensitive where the backend is).
EXACT = ("stage", "subject", "grade", "textbook_version", "volume", "district")
CONTAINS = ("unit", "teacher", "school")


@dataclass(frozen=True, slots=True)
class Filters:
    q: str = ""
    stage: str = ""
    subject: str = ""
    grade: str = ""
    textbook_version: str = ""
    volume: str = ""
    unit: str = ""
    teacher: str = ""
    school: str = ""
    district: str = ""
    exemplary: str = ""
    interrupted: bool | None = None
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "date"  # date | score
    order: str = "desc"  # desc | asc
    page: int = 1
    per_page: int = 20
    # date_from/date_to are the district's days (server/district_time.py).
    zone: tzinfo = UTC


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(f: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for word in f.q.split():
        where.append(LibraryRecording.title.ilike(_like(word), escape="\\"))
    for name in EXACT:
        value = getattr(f, name).strip()
        if value:
            where.append(getattr(LibraryRecording, name) == value)
    for name in CONTAINS:
        value = getattr(f, name).strip()
        if value:
            where.append(getattr(LibraryRecording, name).ilike(_like(value), escape="\\"))
    if f.exemplary:
        where.append(LibraryRecording.exemplary_state == f.exemplary)
    if f.interrupted is not None:
        where.append(LibraryRecording.interrupted.is_(f.interrupted))
    if f.date_from is not None:
        where.append(LibraryRecording.started_at >= day_start(f.date_from, f.zone))
    if f.date_to is not None:
        end = day_start(f.date_to + timedelta(days=1), f.zone)
        where.append(LibraryRecording.started_at < end)
    return where


def search_statement(f: Filters) -> Select[tuple[LibraryRecording]]:
    statement = select(LibraryRecording).where(*_conditions(f))
    if f.sort == "score":
        score = LibraryRecording.score
        keys = [score.is_(None), score.asc() if f.order == "asc" else score.desc()]
    else:
        keys = []
    date_key = LibraryRecording.started_at
    keys.append(date_key.asc() if f.order == "asc" else date_key.desc())
    keys.append(LibraryRecording.id)
    offset = (f.page - 1) * f.per_page
    return statement.order_by(*keys).offset(offset).limit(f.per_page)


async def search(session: AsyncSession, f: Filters) -> tuple[list[LibraryRecording], int]:
    """One page of recordings and the total number matching."""
    total = await session.scalar(
        select(func.count()).select_from(LibraryRecording).where(*_conditions(f))
    )
    rows = list(await session.scalars(search_statement(f)))
    return rows, int(total or 0)


async def refresh_score(session: AsyncSession, recording: LibraryRecording) -> None:
    """A recording's score: the mean, in percent (server/rubrics.py), of every replay
    evaluation's and review's scores, each read on the rubric version it was given on."""
    rows = [
        *await session.execute(
            select(LibraryEvaluation.scores, LibraryEvaluation.rubric_version_id).where(
                LibraryEvaluation.recording_id == recording.id
            )
        ),
        *await session.execute(
            select(ExemplaryStep.scores, ExemplaryStep.rubric_version_id).where(
                ExemplaryStep.recording_id == recording.id
            )
        ),
    ]
    specs = await rubric_versions(session, [version_id for _, version_id in rows])
    kept = [
        p
        for scores, version_id in rows
        if version_id in specs and (p := percent(specs[version_id], scores or {})) is not None
    ]
    recording.score = round(sum(kept) / len(kept), 2) if kept else None


# The workflow: which step may follow which state.
NEXT_STATE = {
    "nominate": (
        (ExemplaryState.NONE.value, ExemplaryState.RETURNED.value),
        ExemplaryState.NOMINATED.value,
    ),
    "exemplary": ((ExemplaryState.NOMINATED.value,), ExemplaryState.EXEMPLARY.value),
    "return": ((ExemplaryState.NOMINATED.value,), ExemplaryState.RETURNED.value),
}


async def exemplary_counts(
    session: AsyncSession, year: int | None, zone: tzinfo = UTC
) -> list[dict[str, Any]]:
    """Per county (区县) and year of recording (in the district's zone): how many are
    nominated, exemplary, returned."""
    rows = await session.execute(
        select(
            LibraryRecording.district,
            LibraryRecording.started_at,
            LibraryRecording.exemplary_state,
        ).where(LibraryRecording.exemplary_state != ExemplaryState.NONE.value)
    )
    counts: dict[tuple[str, int], dict[str, int]] = defaultdict(
        lambda: {s.value: 0 for s in ExemplaryState if s is not ExemplaryState.NONE}
    )
    for district, started_at, state in rows:
        local_year = started_at.astimezone(zone).year
        if year is not None and local_year != year:
            continue
        counts[(district, local_year)][state] += 1
    return [
        {"district": district, "year": y, **values}
        for (district, y), values in sorted(
            counts.items(), key=lambda item: (-item[0][1], item[0][0])
        )
    ]

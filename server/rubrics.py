"""The district's evaluation rubrics (评课量表): read a version, check scores against it,
and turn scores into one comparable figure.

A version's items are scored as integers from 0 to its `scale_max`; a set of scores counts
as the weighted mean of the items it scores, in percent of the scale (so 8 of 10 and 80 of
100 are both 80.0), which is what a recording's `score` averages. Tables:
server/db/rubric_models.py; routes: server/api/rubrics.py; docs/library.md "Rubrics".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.rubric_models import Rubric, RubricVersion

SCALE_MAX_LIMIT = 100  # the largest scale a rubric may have (live notes carry 0..100)
ITEMS_LIMIT = 20  # items per rubric (add_note carries at most 20 scores)


class RubricError(ValueError):
    """Scores or a rubric that cannot be used: a stable code and an English sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RubricItem:
    key: str
    label: str
    weight: int


@dataclass(frozen=True, slots=True)
class RubricSpec:
    """One version of a rubric, detached from the session."""

    version_id: str
    rubric_id: str
    name: str
    version: int
    scale_max: int
    items: tuple[RubricItem, ...]
    in_use: bool

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(item.key for item in self.items)

    def out(self) -> dict[str, Any]:
        """The JSON shape of docs/library.md "Rubrics"."""
        return {
            "version_id": self.version_id,
            "rubric_id": self.rubric_id,
            "name": self.name,
            "version": self.version,
            "scale_min": 0,
            "scale_max": self.scale_max,
            "items": [{"key": i.key, "label": i.label, "weight": i.weight} for i in self.items],
            "in_use": self.in_use,
        }


def spec_of(rubric: Rubric, version: RubricVersion) -> RubricSpec:
    items = tuple(
        RubricItem(str(i["key"]), str(i["label"]), int(i["weight"])) for i in version.items
    )
    return RubricSpec(
        version_id=version.id,
        rubric_id=rubric.id,
        name=rubric.name,
        version=version.version,
        scale_max=version.scale_max,
        items=items,
        in_use=rubric.in_use,
    )


async def newest_version(session: AsyncSession, rubric: Rubric) -> RubricVersion:
    row = await session.scalar(
        select(RubricVersion)
        .where(RubricVersion.rubric_id == rubric.id)
        .order_by(RubricVersion.version.desc())
        .limit(1)
    )
    if row is None:  # every rubric is created with its first version
        raise RubricError("rubric_not_found", f"Rubric {rubric.name} has no version.")
    return row


async def in_use(session: AsyncSession) -> RubricSpec:
    """The newest version of the rubric in use (the migration seeds one)."""
    rubric = await session.scalar(select(Rubric).where(Rubric.in_use.is_(True)).limit(1))
    if rubric is None:
        raise RubricError("rubric_not_found", "No evaluation rubric is in use.")
    return spec_of(rubric, await newest_version(session, rubric))


async def versions(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, RubricSpec]:
    """The versions named by ``ids`` (None and unknown ids left out), by version id."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.execute(
        select(RubricVersion, Rubric)
        .join(Rubric, Rubric.id == RubricVersion.rubric_id)
        .where(RubricVersion.id.in_(wanted))
    )
    return {version.id: spec_of(rubric, version) for version, rubric in rows}


async def version(session: AsyncSession, version_id: str) -> RubricSpec:
    found = (await versions(session, [version_id])).get(version_id)
    if found is None:
        raise RubricError("unknown_rubric_version", f"No rubric version {version_id}.")
    return found


async def scoring_version(session: AsyncSession, version_id: str | None) -> RubricSpec:
    """The version scores are checked against: the one named, else the one in use."""
    return await in_use(session) if version_id is None else await version(session, version_id)


def check_scores(spec: RubricSpec, scores: dict[str, Any], *, complete: bool) -> dict[str, int]:
    """Scores validated against ``spec``; RubricError (unknown_rubric_item,
    rubric_incomplete, bad_score) on a bad one."""
    unknown = sorted(set(scores) - spec.keys)
    if unknown:
        raise RubricError("unknown_rubric_item", f"Unknown rubric items: {', '.join(unknown)}.")
    if complete and set(scores) != spec.keys:
        missing = ", ".join(i.key for i in spec.items if i.key not in scores)
        raise RubricError("rubric_incomplete", f"A review scores every item; missing: {missing}.")
    clean: dict[str, int] = {}
    for item in spec.items:  # in the rubric's order
        if item.key not in scores:
            continue
        value = scores[item.key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise RubricError("bad_score", f"Score {item.key} must be a whole number.")
        if not 0 <= value <= spec.scale_max:
            raise RubricError(
                "bad_score", f"Score {item.key} must be from 0 to {spec.scale_max}, not {value}."
            )
        clean[item.key] = value
    return clean


def percent(spec: RubricSpec, scores: dict[str, Any]) -> float | None:
    """The weighted mean of the scored items in percent of the scale; None if none scored."""
    total = 0.0
    weights = 0
    for item in spec.items:
        value = scores.get(item.key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            total += item.weight * value / spec.scale_max
            weights += item.weight
    return round(100 * total / weights, 2) if weights else None

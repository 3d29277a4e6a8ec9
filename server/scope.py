"""Scopes: what part of the district (州) → county (县/市) → school an account may see.

An account's scope follows its home: an account with a school is scoped to that school, one
with a county (and no school) to that county, one with neither to the whole district. The
role says what it may do there (admins run, teachers teach, inspectors patrol).

Every resource has a home too (a school, a county, or the district itself for district-level
rows). A scope covers a home inside it; for reading it also covers the county it lies in
(a school admin reads his county's record). Queries filter with the SQL clauses below,
so a list never holds a row the caller could not open.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, exists, false, or_, select, true

from server.db.models import Account, Classroom, Lesson, School, lesson_receivers


class ScopeLevel(StrEnum):
    DISTRICT = "district"  # 州: everything
    COUNTY = "county"  # 县/市: its schools
    SCHOOL = "school"  # 学校 or 教学点: itself

    @property
    def width(self) -> int:
        return {"district": 3, "county": 2, "school": 1}[self.value]


@dataclass(frozen=True, slots=True)
class Home:
    """Where a resource lies: a school (with its county), a county, or the district."""

    county_id: str | None = None
    school_id: str | None = None


DISTRICT_HOME = Home()


@dataclass(frozen=True, slots=True)
class AccountScope:
    level: ScopeLevel
    county_id: str | None = None
    school_id: str | None = None

    @classmethod
    def of(cls, county_id: str | None, school_id: str | None) -> AccountScope:
        """The scope of an account whose school lies in `county_id` (or whose county it is)."""
        if school_id is not None:
            return cls(ScopeLevel.SCHOOL, county_id, school_id)
        if county_id is not None:
            return cls(ScopeLevel.COUNTY, county_id, None)
        return cls(ScopeLevel.DISTRICT)

    def at_least(self, level: ScopeLevel) -> bool:
        return self.level.width >= level.width

    def covers(self, home: Home, *, read: bool = False) -> bool:
        """Whether `home` lies inside this scope (for reading: or is the county we lie in)."""
        if self.level is ScopeLevel.DISTRICT:
            return True
        if self.level is ScopeLevel.COUNTY:
            return home.county_id == self.county_id
        if home.school_id == self.school_id:
            return True
        return (
            read
            and home.school_id is None
            and home.county_id is not None
            and (home.county_id == self.county_id)
        )

    # SQL -------------------------------------------------------------------------------

    def school_ids(self) -> Select[tuple[str]] | None:
        """The ids of the schools in scope, as a subquery; None: every school."""
        if self.level is ScopeLevel.DISTRICT:
            return None
        if self.level is ScopeLevel.COUNTY:
            return select(School.id).where(School.county_id == self.county_id)
        return select(School.id).where(School.id == self.school_id)

    def school_clause(
        self, column: ColumnElement[str] | ColumnElement[str | None]
    ) -> ColumnElement[bool]:
        """`column` (a school id) lies in scope."""
        ids = self.school_ids()
        return true() if ids is None else column.in_(ids)

    def classroom_ids(self) -> Select[tuple[str]] | None:
        ids = self.school_ids()
        return None if ids is None else select(Classroom.id).where(Classroom.school_id.in_(ids))

    def county_clause(self, column: ColumnElement[str]) -> ColumnElement[bool]:
        """A county (its id in `column`) readable in this scope: all, or one's own."""
        if self.level is ScopeLevel.DISTRICT:
            return true()
        return column == self.county_id if self.county_id is not None else false()

    def lesson_clause(self) -> ColumnElement[bool]:
        """A lesson is visible when its lead classroom or a receiving classroom is in scope
        (a county sees the lessons its teaching points receive from elsewhere)."""
        rooms = self.classroom_ids()
        if rooms is None:
            return true()
        received = exists().where(
            lesson_receivers.c.lesson_id == Lesson.id, lesson_receivers.c.classroom_id.in_(rooms)
        )
        return or_(Lesson.lead_classroom_id.in_(rooms), received)

    def account_clause(self) -> ColumnElement[bool]:
        """Accounts whose home lies in scope (a school's people, a county's people...)."""
        if self.level is ScopeLevel.DISTRICT:
            return true()
        ids = self.school_ids()
        assert ids is not None
        if self.level is ScopeLevel.COUNTY:
            return or_(Account.county_id == self.county_id, Account.school_id.in_(ids))
        return Account.school_id == self.school_id


DISTRICT_SCOPE = AccountScope(ScopeLevel.DISTRICT)

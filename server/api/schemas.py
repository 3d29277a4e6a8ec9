"""Request and response bodies of the API (pydantic). Names end in In, Patch or Out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
)

from server.db import lengths
from server.db.models import AccountRole, ClassroomKind, LessonStatus, SchoolKind
from signaling.grants import Role

# The most receiving classrooms a request body may list; the setting max_receiving_classrooms
# (at most this) is the lesson's real limit.
ROSTER_BODY_MAX = 10_000

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=lengths.NAME)
]
Meta = Annotated[str, StringConstraints(strip_whitespace=True, max_length=lengths.NAME)]


def _meta(length: int) -> Any:
    """Lesson metadata fitting its column (server/db/lengths.py)."""
    return Annotated[str, StringConstraints(strip_whitespace=True, max_length=length)]


Stage = _meta(lengths.STAGE)
Subject = _meta(lengths.SUBJECT)
Grade = _meta(lengths.GRADE)
TextbookVersion = _meta(lengths.TEXTBOOK_VERSION)
Volume = _meta(lengths.VOLUME)
Unit = _meta(lengths.UNIT)
Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$"
    ),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=32)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a timezone is required, e.g. 2026-09-01T08:00:00+08:00")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Auth -----------------------------------------------------------------------------------


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PasswordChangeIn(Strict):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: Password


class AccountOut(Out):
    id: str
    username: str
    display_name: str
    role: AccountRole
    school_id: str | None
    # The account's scope: its school, else its county, else the district (both null).
    county_id: str | None = None
    active: bool
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scope(self) -> str:
        """school, county or district."""
        return "school" if self.school_id else "county" if self.county_id else "district"


class LoginOut(BaseModel):
    token: str
    expires_at: datetime
    account: AccountOut


# Schools and classrooms ------------------------------------------------------------------


# 行政区划代码: digits only (six for a county), or empty.
DivisionCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{0,12}$")]


class CountyIn(Strict):
    name: Name
    code: DivisionCode = ""


class CountyPatch(Strict):
    name: Name | None = None
    code: DivisionCode | None = None


class CountyOut(Out):
    id: str
    name: str
    code: str
    schools: int = 0
    created_at: datetime


class SchoolIn(Strict):
    name: Name
    kind: SchoolKind
    # The county (县/市); null: directly under the district (州直属). A county admin's new
    # schools go into his county.
    county_id: Id | None = None
    # Deprecated: a county by name (created when a district admin names a new one).
    district: Meta = ""


class SchoolPatch(Strict):
    name: Name | None = None
    kind: SchoolKind | None = None
    county_id: Id | None = None
    district: Meta | None = None


class SchoolOut(Out):
    id: str
    name: str
    kind: SchoolKind
    county_id: str | None
    county: str  # the county's name, "" directly under the district
    district: str  # deprecated: the county's name, as before counties were rows
    created_at: datetime


class ClassroomIn(Strict):
    school_id: Id
    name: Name
    kind: ClassroomKind = ClassroomKind.ANY


class ClassroomPatch(Strict):
    name: Name | None = None
    kind: ClassroomKind | None = None


class ClassroomOut(Out):
    id: str
    school_id: str
    name: str
    kind: ClassroomKind
    created_at: datetime


# Accounts -------------------------------------------------------------------------------


class AccountIn(Strict):
    username: Username
    display_name: Name
    role: AccountRole
    password: Password
    # The scope: a school, else a county, else (both null) the whole district.
    school_id: Id | None = None
    county_id: Id | None = None


class AccountPatch(Strict):
    display_name: Name | None = None
    role: AccountRole | None = None
    password: Password | None = None
    school_id: Id | None = None
    county_id: Id | None = None
    active: bool | None = None


# Lessons --------------------------------------------------------------------------------


class LessonMeta(Strict):
    """CELTS-42 style library metadata."""

    stage: Stage = ""  # 学段
    subject: Subject = ""  # 学科
    grade: Grade = ""  # 年级
    textbook_version: TextbookVersion = ""  # 教材版本
    volume: Volume = ""  # 册次
    unit: Unit = ""  # 单元/课时


class LessonIn(LessonMeta):
    title: Name
    # Required for admins; a teacher may leave it out (or name himself).
    teacher_id: Id | None = None
    lead_classroom_id: Id
    # The setting max_receiving_classrooms bounds it (roster_too_large); this only bounds
    # the body a request may make the server parse.
    receiver_classroom_ids: list[Id] = Field(default_factory=list, max_length=ROSTER_BODY_MAX)
    scheduled_start: AwareDatetime
    scheduled_end: AwareDatetime


class LessonPatch(Strict):
    title: Name | None = None
    teacher_id: Id | None = None
    lead_classroom_id: Id | None = None
    receiver_classroom_ids: list[Id] | None = Field(default=None, max_length=ROSTER_BODY_MAX)
    scheduled_start: AwareDatetime | None = None
    scheduled_end: AwareDatetime | None = None
    stage: Stage | None = None
    subject: Subject | None = None
    grade: Grade | None = None
    textbook_version: TextbookVersion | None = None
    volume: Volume | None = None
    unit: Unit | None = None


class ClassroomRef(BaseModel):
    id: str
    name: str
    school_id: str
    school: str


class LessonOut(BaseModel):
    id: str
    title: str
    state: LessonStatus
    teacher_id: str
    teacher: str
    lead: ClassroomRef
    receivers: list[ClassroomRef]
    scheduled_start: datetime
    scheduled_end: datetime
    started_at: datetime | None
    ended_at: datetime | None
    recording: bool
    stage: str
    subject: str
    grade: str
    textbook_version: str
    volume: str
    unit: str
    # From the term timetable (None for a lesson made by hand): its slot and regular day.
    slot_id: str | None = None
    slot_day: date | None = None
    recording_policy: str = "teacher"  # always | never | teacher
    start_mode: str = "click"  # click | time


# Join links -----------------------------------------------------------------------------


class LinkIn(Strict):
    """A classroom link (give classroom_id) or a patrol link (give account_id of an inspector)."""

    classroom_id: Id | None = None
    account_id: Id | None = None
    # Optional check: the role the link must turn out to have.
    role: Role | None = None
    expires_at: AwareDatetime | None = None


class LinksForRosterIn(Strict):
    expires_at: AwareDatetime | None = None


class LinkOut(BaseModel):
    id: str
    code: str
    url: str
    lesson_id: str
    role: Role
    classroom_id: str | None
    classroom: str | None
    account_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class LessonSummary(BaseModel):
    id: str
    title: str
    state: LessonStatus
    teacher: str
    school: str
    subject: str
    grade: str
    scheduled_start: datetime
    scheduled_end: datetime


class JoinOut(BaseModel):
    """What a terminal needs to open the signaling WebSocket."""

    token: str
    expires_in: int
    role: Role
    lesson: LessonSummary
    classroom: ClassroomRef | None
    ws_url: str
    ice_servers: list[str]


class RecordingOutcome(BaseModel):
    recording_id: str
    state: str  # finished | interrupted | failed
    rendition_state: str  # queued | running | done | failed | cancelled
    rendition_progress: float  # 0..1
    replay_url: str  # the replay page (it asks for a signed-in account)


class RecordingSpaceOut(BaseModel):
    """Room left where the lesson would be recorded, for the lead's warning before recording."""

    free_bytes: int | None  # None: the recording folder cannot be read
    min_free_bytes: int  # the min_free_disk_mb setting
    space_low: bool  # below min_free_bytes, or unreadable


class OutcomeOut(BaseModel):
    """What the classroom pages show when a lesson is over (or how far it is)."""

    lesson: LessonSummary
    state: LessonStatus
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None  # from going live to the end; None before either
    recordings: list[RecordingOutcome]

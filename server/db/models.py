"""The tables: schools, classrooms, accounts, sessions, lessons, join links and timelines.

Ids are uuid4 hex strings; every datetime is timezone-aware UTC (SQLite keeps none, so
UtcDateTime puts it back). Enumerated columns are short strings; the API validates them.
Relationships never load implicitly (lazy="raise"): queries name what they need.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from server.db import lengths


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; naive values are refused, not guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SchoolKind(StrEnum):
    CENTRAL = "central"  # 中心校
    TEACHING_POINT = "teaching_point"  # 教学点
    PRIMARY = "primary"  # 完全小学
    MIDDLE = "middle"  # 初级中学
    NINE_YEAR = "nine_year"  # 九年一贯制学校


class ClassroomKind(StrEnum):
    LEAD = "lead"  # 主讲教室
    RECEIVING = "receiving"  # 接收教室
    ANY = "any"  # usable either way


class AccountRole(StrEnum):
    ADMIN = "admin"
    TEACHER = "teacher"
    INSPECTOR = "inspector"


class LessonStatus(StrEnum):
    """Mirrors signaling.hooks.LessonState; kept here so the tables need no signaling import."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012


ID = String(32)


class County(Base):
    """A county or county-level city (县/市) of the district (州). The district is the whole
    installation; schools hang off a county, or directly off the district (州直属)."""

    __tablename__ = "counties"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Administrative division code (行政区划代码), optional.
    code: Mapped[str] = mapped_column(String(12), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class School(Base):
    __tablename__ = "schools"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    # The county (县/市); None: directly under the district (州直属).
    county_id: Mapped[str | None] = mapped_column(
        ForeignKey("counties.id", ondelete="RESTRICT"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    county: Mapped[County | None] = relationship(lazy="raise")


class Classroom(Base):
    __tablename__ = "classrooms"
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default=ClassroomKind.ANY.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    school: Mapped[School] = relationship(lazy="raise")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    # The account's scope (server/scope.py): a school, else a county, else the district.
    school_id: Mapped[str | None] = mapped_column(
        ForeignKey("schools.id", ondelete="SET NULL"), default=None
    )
    county_id: Mapped[str | None] = mapped_column(
        ForeignKey("counties.id", ondelete="RESTRICT"), default=None, index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    school: Mapped[School | None] = relationship(lazy="raise")


class LoginSession(Base):
    """A signed-in browser or API client. Only the SHA-256 of the token is kept."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    account: Mapped[Account] = relationship(lazy="raise")


lesson_receivers = Table(
    "lesson_receivers",
    Base.metadata,
    Column("lesson_id", ID, ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "classroom_id",
        ID,
        ForeignKey("classrooms.id", ondelete="RESTRICT"),
        primary_key=True,
    ),
    # Keeps the order the receiving classrooms were listed in.
    Column("position", Integer, nullable=False, default=0),
)


class Lesson(Base):
    __tablename__ = "lessons"
    __table_args__ = (UniqueConstraint("slot_id", "slot_day"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(300))
    teacher_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    lead_classroom_id: Mapped[str] = mapped_column(ForeignKey("classrooms.id", ondelete="RESTRICT"))
    scheduled_start: Mapped[datetime] = mapped_column(index=True)
    scheduled_end: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default=LessonStatus.SCHEDULED.value, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    # CELTS-42 style library metadata.
    stage: Mapped[str] = mapped_column(String(lengths.STAGE), default="")  # 学段
    subject: Mapped[str] = mapped_column(String(lengths.SUBJECT), default="")  # 学科
    grade: Mapped[str] = mapped_column(String(lengths.GRADE), default="")  # 年级
    textbook_version: Mapped[str] = mapped_column(String(lengths.TEXTBOOK_VERSION), default="")
    volume: Mapped[str] = mapped_column(String(lengths.VOLUME), default="")  # 册次
    unit: Mapped[str] = mapped_column(String(lengths.UNIT), default="")  # 单元/课时
    # Generated from the term timetable (server/timetable/): its slot and the slot's regular
    # day; (slot_id, slot_day) is what makes generating again update, not duplicate.
    slot_id: Mapped[str | None] = mapped_column(
        ForeignKey("timetable_slots.id", ondelete="SET NULL"), default=None, index=True
    )
    slot_day: Mapped[date | None] = mapped_column(Date, default=None, index=True)
    # always | never | teacher (server/db/calendar_models.RecordingPolicy); click | time.
    recording_policy: Mapped[str] = mapped_column(String(16), default="teacher")
    start_mode: Mapped[str] = mapped_column(String(16), default="click")
    # Rows of lesson_receivers for this lesson, kept by a database trigger (migration 0010)
    # so reports need not count them; read it, never write it.
    receiver_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    teacher: Mapped[Account] = relationship(lazy="raise")
    lead_classroom: Mapped[Classroom] = relationship(lazy="raise")
    receivers: Mapped[list[Classroom]] = relationship(
        secondary=lesson_receivers,
        order_by=lesson_receivers.c.position,
        lazy="raise",
        viewonly=True,
    )


class JoinLink(Base):
    """A revocable link a classroom terminal or an inspector opens to get a join token."""

    __tablename__ = "join_links"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    classroom_id: Mapped[str | None] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), default=None
    )
    role: Mapped[str] = mapped_column(String(16))
    # The inspector a patrol link belongs to.
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), default=None
    )
    created_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    lesson: Mapped[Lesson] = relationship(lazy="raise")
    classroom: Mapped[Classroom | None] = relationship(lazy="raise")
    account: Mapped[Account | None] = relationship(lazy="raise", foreign_keys=[account_id])


class EvaluationNote(Base):
    """A timestamped evaluation (评课) written during a live lesson."""

    __tablename__ = "evaluation_notes"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    author: Mapped[str] = mapped_column(String(200))
    author_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    # Seconds since the lesson went live; None if it was not live.
    offset_s: Mapped[float | None] = mapped_column(Float, default=None)
    text: Mapped[str] = mapped_column(Text)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The rubric version the scores were given on (None: no scores).
    rubric_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("rubric_versions.id"), default=None
    )


class StageEvent(Base):
    """Who was on stage from `at` on (None: nobody). The recorder's inset follows this."""

    __tablename__ = "stage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    classroom_id: Mapped[str | None] = mapped_column(
        ForeignKey("classrooms.id", ondelete="SET NULL"), default=None
    )
    at: Mapped[datetime]


class RecordingEvent(Base):
    """Recording switched on or off at `at`."""

    __tablename__ = "recording_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    on: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime]


class PatrolTalk(Base):
    """An inspector talked back to one classroom (实时音频互动反馈) from `started_at` on.

    Written as the talk starts (duration null while it goes on, or if the node died mid-talk)
    and completed as it ends. Names are copied, so the record reads right after renames."""

    __tablename__ = "patrol_talks"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    inspector: Mapped[str] = mapped_column(String(200))
    classroom_id: Mapped[str | None] = mapped_column(
        ForeignKey("classrooms.id", ondelete="SET NULL"), default=None
    )
    classroom_name: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]
    # Seconds since the lesson went live.
    offset_s: Mapped[float | None] = mapped_column(Float, default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)


class ExemplaryState(StrEnum):
    """The exemplary-lesson (示范课) workflow: nominate -> review -> exemplary or returned."""

    NONE = "none"
    NOMINATED = "nominated"
    EXEMPLARY = "exemplary"
    RETURNED = "returned"


class LibraryRecording(Base):
    """One recording session in the course-example library (示范课例库).

    Lesson metadata is copied at catalogue time, so the entry stays right when the
    timetable changes later. Files live under ``directory`` (relative to the recording root).
    """

    __tablename__ = "library_recordings"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    lesson_id: Mapped[str | None] = mapped_column(
        ForeignKey("lessons.id", ondelete="SET NULL"), default=None, index=True
    )
    directory: Mapped[str] = mapped_column(String(500), unique=True)
    # finished | interrupted | failed (the recorder's session state, plus an error below).
    state: Mapped[str] = mapped_column(String(16))
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    title: Mapped[str] = mapped_column(String(300), default="")
    stage: Mapped[str] = mapped_column(String(lengths.STAGE), default="", index=True)  # 学段
    subject: Mapped[str] = mapped_column(String(lengths.SUBJECT), default="", index=True)
    grade: Mapped[str] = mapped_column(String(lengths.GRADE), default="", index=True)  # 年级
    textbook_version: Mapped[str] = mapped_column(String(lengths.TEXTBOOK_VERSION), default="")
    volume: Mapped[str] = mapped_column(String(lengths.VOLUME), default="")  # 册次
    unit: Mapped[str] = mapped_column(String(lengths.UNIT), default="")  # 单元/课时
    teacher: Mapped[str] = mapped_column(String(200), default="")
    teacher_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None, index=True
    )
    school: Mapped[str] = mapped_column(String(200), default="")
    district: Mapped[str] = mapped_column(String(200), default="")  # 区县
    started_at: Mapped[datetime] = mapped_column(index=True)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # One dict per track file: name, producer_id, source, classroom, kind, mime_type,
    # offset_s, duration_s, size, sha256, state.
    tracks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rendition_state: Mapped[str] = mapped_column(String(16), default="queued")
    rendition_progress: Mapped[float] = mapped_column(Float, default=0.0)
    rendition_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Relative to `directory`: rendition/lesson.mp4, the poster and the thumbnails.
    rendition_files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score: Mapped[float | None] = mapped_column(Float, default=None, index=True)
    exemplary_state: Mapped[str] = mapped_column(
        String(16), default=ExemplaryState.NONE.value, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LibraryEvaluation(Base):
    """A note and rubric scores written while replaying, anchored at `t_s` seconds."""

    __tablename__ = "library_evaluations"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("library_recordings.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    author: Mapped[str] = mapped_column(String(200))
    author_role: Mapped[str] = mapped_column(String(16))
    t_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text, default="")
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The rubric version the scores were given on (None: no scores).
    rubric_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("rubric_versions.id"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExemplaryStep(Base):
    """One step of the exemplary workflow: who did what and when."""

    __tablename__ = "exemplary_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("library_recordings.id", ondelete="CASCADE"), index=True
    )
    # nominate | exemplary | return
    action: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The rubric version the scores were given on (None: no scores).
    rubric_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("rubric_versions.id"), default=None
    )


# Tables kept in modules of their own register on Base here: importing this module gives
# the whole schema (migrations, create_all, the schema test).
from server.db import attendance_models as _attendance_models  # noqa: E402, F401
from server.db import calendar_models as _calendar_models  # noqa: E402, F401
from server.db import ingest_models as _ingest_models  # noqa: E402, F401
from server.db import report_models as _report_models  # noqa: E402, F401
from server.db import rubric_models as _rubric_models  # noqa: E402, F401
from server.db import terminal_models as _terminal_models  # noqa: E402, F401

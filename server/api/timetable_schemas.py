"""Bodies of the term and timetable API (server/api/terms.py, slots.py)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated

from pydantic import BaseModel, Field

from server.api.schemas import ClassroomRef, Id, Meta, Name, Strict
from server.db.calendar_models import ExceptionAction, RecordingPolicy, StartMode

Weekday = Annotated[int, Field(ge=1, le=5, description="1 = Monday ... 5 = Friday")]
Period = Annotated[int, Field(ge=1, le=12)]


class HolidayIn(Strict):
    first_day: date
    last_day: date
    name: Meta = ""


class MakeupDayIn(Strict):
    day: date
    follows_weekday: Weekday
    name: Meta = ""


class TermIn(Strict):
    name: Name
    first_day: date
    last_day: date
    holidays: list[HolidayIn] = Field(default_factory=list, max_length=100)
    makeup_days: list[MakeupDayIn] = Field(default_factory=list, max_length=100)


class TermPatch(Strict):
    name: Name | None = None
    first_day: date | None = None
    last_day: date | None = None
    holidays: list[HolidayIn] | None = Field(default=None, max_length=100)
    makeup_days: list[MakeupDayIn] | None = Field(default=None, max_length=100)


class GenerateOut(BaseModel):
    created: int
    updated: int
    removed: int
    kept: int
    lessons: int


class TermOut(BaseModel):
    id: str
    name: str
    first_day: date
    last_day: date
    holidays: list[HolidayIn]
    makeup_days: list[MakeupDayIn]
    teaching_days: int
    created_at: datetime
    # What the last change did to the term's lessons (absent on reads).
    generated: GenerateOut | None = None


class SlotIn(Strict):
    weekday: Weekday
    period: Period
    starts: time
    ends: time
    title: Meta = ""
    subject: Meta = ""
    grade: Meta = ""
    lead_classroom_id: Id
    teacher_id: Id
    receiver_classroom_ids: list[Id] = Field(default_factory=list, max_length=64)
    recording_policy: RecordingPolicy = RecordingPolicy.TEACHER
    start_mode: StartMode = StartMode.CLICK


class SlotPatch(Strict):
    weekday: Weekday | None = None
    period: Period | None = None
    starts: time | None = None
    ends: time | None = None
    title: Meta | None = None
    subject: Meta | None = None
    grade: Meta | None = None
    lead_classroom_id: Id | None = None
    teacher_id: Id | None = None
    receiver_classroom_ids: list[Id] | None = Field(default=None, max_length=64)
    recording_policy: RecordingPolicy | None = None
    start_mode: StartMode | None = None


class SlotOut(BaseModel):
    id: str
    term_id: str
    weekday: int
    period: int
    starts: time
    ends: time
    title: str
    subject: str
    grade: str
    lead: ClassroomRef
    teacher_id: str
    teacher: str
    receivers: list[ClassroomRef]
    recording_policy: RecordingPolicy
    start_mode: StartMode
    generated: GenerateOut | None = None


class ExceptionIn(Strict):
    action: ExceptionAction
    new_day: date | None = None
    new_starts: time | None = None
    new_ends: time | None = None
    teacher_id: Id | None = None
    note: Meta = ""


class ExceptionOut(BaseModel):
    slot_id: str
    day: date
    action: ExceptionAction
    new_day: date | None
    new_starts: time | None
    new_ends: time | None
    teacher_id: str | None
    note: str
    generated: GenerateOut | None = None

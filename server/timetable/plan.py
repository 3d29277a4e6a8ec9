"""Planning a term's lessons from its calendar, weekly slots and per-date exceptions.

Plain data in, plain data out (no database): the generator (server/timetable/generate.py)
loads rows into these values, plans, checks for double booking and writes lessons; the
model-based test drives the same functions.

A teaching day is a day of the term that is not a holiday and is either Monday-Friday or
a make-up day (调休), which follows another weekday's timetable. A slot's lesson on a
teaching day is keyed by (slot id, that day); an exception for that key cancels, moves or
hands it to another teacher, and is applied every time the term is planned again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from server.district_time import at_local

WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}


@dataclass(frozen=True, slots=True)
class Holiday:
    first_day: date
    last_day: date
    name: str = ""


@dataclass(frozen=True, slots=True)
class MakeupDay:
    day: date
    follows_weekday: int  # 1..5
    name: str = ""


@dataclass(frozen=True, slots=True)
class TermCalendar:
    first_day: date
    last_day: date
    holidays: tuple[Holiday, ...] = ()
    makeup_days: tuple[MakeupDay, ...] = ()

    def contains(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def is_holiday(self, day: date) -> bool:
        return any(h.first_day <= day <= h.last_day for h in self.holidays)

    def timetable_weekday(self, day: date) -> int | None:
        """Whose weekday's slots run on `day`; None when it is no teaching day."""
        if not self.contains(day) or self.is_holiday(day):
            return None
        for makeup in self.makeup_days:
            if makeup.day == day:
                return makeup.follows_weekday
        weekday = day.isoweekday()
        return weekday if weekday <= 5 else None

    def teaching_days(self) -> list[tuple[date, int]]:
        days = []
        day = self.first_day
        while day <= self.last_day:
            weekday = self.timetable_weekday(day)
            if weekday is not None:
                days.append((day, weekday))
            day += timedelta(days=1)
        return days


@dataclass(frozen=True, slots=True)
class SlotPlan:
    id: str
    weekday: int
    period: int
    starts: time
    ends: time
    lead_classroom_id: str
    teacher_id: str
    receiver_ids: tuple[str, ...] = ()
    label: str = ""  # how the slot is named in a conflict message ("数学 三年级")

    def classrooms(self) -> frozenset[str]:
        return frozenset((self.lead_classroom_id, *self.receiver_ids))

    def describe(self) -> str:
        when = f"{self.starts:%H:%M}-{self.ends:%H:%M}"
        label = f", {self.label}" if self.label else ""
        return f"{WEEKDAYS[self.weekday]} period {self.period} ({when}{label})"


@dataclass(frozen=True, slots=True)
class ExceptionPlan:
    slot_id: str
    day: date
    action: str  # cancel | move | substitute
    new_day: date | None = None
    new_starts: time | None = None
    new_ends: time | None = None
    teacher_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedLesson:
    slot_id: str
    slot_day: date  # the slot's regular day (the key), even when moved
    day: date  # the day it takes place
    start: datetime  # UTC
    end: datetime
    teacher_id: str
    lead_classroom_id: str
    receiver_ids: tuple[str, ...]
    exception: str | None = None

    def classrooms(self) -> frozenset[str]:
        return frozenset((self.lead_classroom_id, *self.receiver_ids))


@dataclass(frozen=True, slots=True)
class Clash:
    """Two lessons (or slots) that need one classroom or one teacher at once."""

    first: str
    second: str
    classroom_id: str | None = None
    teacher_id: str | None = None


def plan_lessons(
    calendar: TermCalendar,
    slots: Sequence[SlotPlan],
    exceptions: Iterable[ExceptionPlan],
    zone: tzinfo,
) -> list[PlannedLesson]:
    """Every lesson of the term, in start order."""
    by_key = {(e.slot_id, e.day): e for e in exceptions}
    by_weekday: dict[int, list[SlotPlan]] = {}
    for slot in slots:
        by_weekday.setdefault(slot.weekday, []).append(slot)
    planned = []
    for day, weekday in calendar.teaching_days():
        for slot in by_weekday.get(weekday, ()):
            exception = by_key.get((slot.id, day))
            on, starts, ends, teacher = day, slot.starts, slot.ends, slot.teacher_id
            if exception is not None:
                if exception.action == "cancel":
                    continue
                on = exception.new_day or day
                starts = exception.new_starts or starts
                ends = exception.new_ends or ends
                teacher = exception.teacher_id or teacher
            planned.append(
                PlannedLesson(
                    slot_id=slot.id,
                    slot_day=day,
                    day=on,
                    start=at_local(on, starts, zone),
                    end=at_local(on, ends, zone),
                    teacher_id=teacher,
                    lead_classroom_id=slot.lead_classroom_id,
                    receiver_ids=slot.receiver_ids,
                    exception=exception.action if exception is not None else None,
                )
            )
    planned.sort(key=lambda p: (p.start, p.slot_id))
    return planned


def _shared(
    a_rooms: frozenset[str], a_teacher: str, b_rooms: frozenset[str], b_teacher: str
) -> tuple[str | None, str | None]:
    common = sorted(a_rooms & b_rooms)
    if common:
        return common[0], None
    if a_teacher == b_teacher:
        return None, a_teacher
    return None, None


def slot_clash(slot: SlotPlan, others: Iterable[SlotPlan]) -> tuple[SlotPlan, Clash] | None:
    """The first other slot of the same weekday whose time overlaps `slot` and that needs
    one of its classrooms or its teacher."""
    for other in others:
        if other.id == slot.id or other.weekday != slot.weekday:
            continue
        if not (slot.starts < other.ends and other.starts < slot.ends):
            continue
        room, teacher = _shared(
            slot.classrooms(), slot.teacher_id, other.classrooms(), other.teacher_id
        )
        if room or teacher:
            return other, Clash(slot.id, other.id, room, teacher)
    return None


def lesson_clash(
    planned: Sequence[PlannedLesson],
) -> tuple[PlannedLesson, PlannedLesson, Clash] | None:
    """The first two planned lessons (sorted by start) that double-book a classroom or a
    teacher. A sweep: each lesson is compared with those still running when it starts."""
    running: list[PlannedLesson] = []
    for lesson in planned:
        running = [r for r in running if r.end > lesson.start]
        for other in running:
            room, teacher = _shared(
                lesson.classrooms(), lesson.teacher_id, other.classrooms(), other.teacher_id
            )
            if room or teacher:
                return other, lesson, Clash(other.slot_id, lesson.slot_id, room, teacher)
        running.append(lesson)
    return None

"""Who came to a lesson and for how long: each receiving classroom's connected intervals.

A classroom is present while one of its peers is connected (lost or gone ends an interval,
a resume or a new join starts one). What counts is the time inside the live lesson, from
start to end, so a classroom that waited before the start is not credited for waiting.

Every change is also handed to a durable record (LessonHooks.record_attendance): presence
events as they happen and, every QUALITY_FLUSH_SAMPLES quality reports and at the end, the
percentiles of each classroom's connection quality. The same data flags late and missing
receiving classrooms to the lead and patrol while the lesson is live.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from signaling.hooks import (
    AttendanceRecord,
    ClassroomInfo,
    PresenceEvent,
    PresenceKind,
    QualitySummary,
)
from signaling.protocol import AttendanceFlag, ClassroomAttendance

# A quality summary is written after this many reports of a classroom (~2 min at one report
# per 2 s), so a node that dies mid-lesson loses at most that much of it.
QUALITY_FLUSH_SAMPLES = 60
# Samples kept per classroom; past it every other one is dropped (a 3-hour lesson at 2 s).
QUALITY_MAX_SAMPLES = 5400


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `values` (unsorted); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    # The smallest value with at least `fraction` of them at or below it.
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered) - 1e-9) - 1))
    return ordered[rank]


@dataclass(slots=True)
class _Quality:
    loss: list[float] = field(default_factory=list)
    jitter_ms: list[float] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)
    unflushed: int = 0

    def add(self, loss: float, jitter_ms: float, rtt_ms: float | None) -> None:
        if len(self.loss) >= QUALITY_MAX_SAMPLES:
            del self.loss[::2], self.jitter_ms[::2]
            del self.rtt_ms[::2]
        self.loss.append(loss)
        self.jitter_ms.append(jitter_ms)
        if rtt_ms is not None:
            self.rtt_ms.append(rtt_ms)
        self.unflushed += 1

    def summary(self, lesson_id: str, classroom_id: str) -> QualitySummary:
        self.unflushed = 0
        return QualitySummary(
            lesson_id=lesson_id,
            classroom_id=classroom_id,
            samples=len(self.loss),
            loss_p50=percentile(self.loss, 0.5),
            loss_p95=percentile(self.loss, 0.95),
            jitter_p50_ms=percentile(self.jitter_ms, 0.5),
            jitter_p95_ms=percentile(self.jitter_ms, 0.95),
            rtt_p50_ms=percentile(self.rtt_ms, 0.5),
            rtt_p95_ms=percentile(self.rtt_ms, 0.95),
        )


@dataclass(slots=True)
class _Presence:
    joins: int = 0
    since: datetime | None = None
    first: datetime | None = None
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)


def _no_record(record: AttendanceRecord) -> None:
    return None


class Attendance:
    def __init__(
        self, lesson_id: str = "", record: Callable[[AttendanceRecord], None] = _no_record
    ) -> None:
        self.lesson_id = lesson_id
        self._record = record
        self._classrooms: dict[str, _Presence] = {}
        self._quality: dict[str, _Quality] = {}

    def joined(self, classroom_id: str, at: datetime) -> None:
        presence = self._classrooms.setdefault(classroom_id, _Presence())
        presence.joins += 1
        self._connect(presence, classroom_id, at, "joined")

    def connected(self, classroom_id: str, at: datetime) -> None:
        presence = self._classrooms.setdefault(classroom_id, _Presence())
        self._connect(presence, classroom_id, at, "resumed")

    def _connect(
        self, presence: _Presence, classroom_id: str, at: datetime, kind: PresenceKind
    ) -> None:
        if presence.since is None:
            presence.since = at
            if presence.first is None:
                presence.first = at
            self._record(PresenceEvent(self.lesson_id, classroom_id, at, kind))

    def disconnected(self, classroom_id: str, at: datetime, kind: PresenceKind = "left") -> None:
        presence = self._classrooms.get(classroom_id)
        if presence is not None and presence.since is not None:
            presence.intervals.append((presence.since, at))
            presence.since = None
            self._record(PresenceEvent(self.lesson_id, classroom_id, at, kind))
            self._flush_quality(classroom_id)

    def quality(
        self, classroom_id: str, loss: float, jitter_ms: float, rtt_ms: float | None
    ) -> None:
        """One quality report of a connected classroom's peer."""
        quality = self._quality.setdefault(classroom_id, _Quality())
        quality.add(loss, jitter_ms, rtt_ms)
        if quality.unflushed >= QUALITY_FLUSH_SAMPLES:
            self._record(quality.summary(self.lesson_id, classroom_id))

    def _flush_quality(self, classroom_id: str) -> None:
        quality = self._quality.get(classroom_id)
        if quality is not None and quality.unflushed:
            self._record(quality.summary(self.lesson_id, classroom_id))

    def flush(self) -> None:
        """The lesson ended: every classroom's quality summary not yet written."""
        for classroom_id in tuple(self._quality):
            self._flush_quality(classroom_id)

    def flags(
        self,
        roster: Iterable[ClassroomInfo],
        started_at: datetime | None,
        now: datetime,
        late_after_s: float,
    ) -> list[AttendanceFlag]:
        """Receiving classrooms that came late (first connected more than late_after_s
        after the start) or are still missing that long after it; roster order."""
        if started_at is None:
            return []
        deadline = started_at + timedelta(seconds=late_after_s)
        flags = []
        for classroom in roster:
            presence = self._classrooms.get(classroom.id)
            first = presence.first if presence is not None else None
            if first is None:
                if now >= deadline:
                    flags.append(
                        AttendanceFlag(
                            classroom_id=classroom.id,
                            name=classroom.name,
                            school=classroom.school,
                            status="missing",
                        )
                    )
            elif first > deadline:
                flags.append(
                    AttendanceFlag(
                        classroom_id=classroom.id,
                        name=classroom.name,
                        school=classroom.school,
                        status="late",
                        joined_at=first.isoformat(),
                        late_s=round((first - started_at).total_seconds(), 1),
                    )
                )
        return flags

    def report(
        self, roster: Iterable[ClassroomInfo], started_at: datetime | None, ended_at: datetime
    ) -> list[ClassroomAttendance]:
        """Every roster classroom, absent ones with 0 s, in roster order."""
        rows = []
        for classroom in roster:
            presence = self._classrooms.get(classroom.id, _Presence())
            spans = list(presence.intervals)
            if presence.since is not None:
                spans.append((presence.since, ended_at))
            present = 0.0
            if started_at is not None:
                for begin, end in spans:
                    overlap = (min(end, ended_at) - max(begin, started_at)).total_seconds()
                    present += max(0.0, overlap)
            rows.append(
                ClassroomAttendance(
                    classroom_id=classroom.id,
                    name=classroom.name,
                    school=classroom.school,
                    present_s=round(present, 1),
                    joins=presence.joins,
                )
            )
        return rows

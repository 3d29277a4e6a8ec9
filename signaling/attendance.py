"""Who came to a lesson and for how long: each receiving classroom's connected intervals.

A classroom is present while one of its peers is connected (lost or gone ends an interval,
a resume or a new join starts one). What counts is the time inside the live lesson, from
start to end, so a classroom that waited before the start is not credited for waiting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from signaling.hooks import ClassroomInfo
from signaling.protocol import ClassroomAttendance


@dataclass(slots=True)
class _Presence:
    joins: int = 0
    since: datetime | None = None
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)


class Attendance:
    def __init__(self) -> None:
        self._classrooms: dict[str, _Presence] = {}

    def joined(self, classroom_id: str, at: datetime) -> None:
        presence = self._classrooms.setdefault(classroom_id, _Presence())
        presence.joins += 1
        self.connected(classroom_id, at)

    def connected(self, classroom_id: str, at: datetime) -> None:
        presence = self._classrooms.setdefault(classroom_id, _Presence())
        if presence.since is None:
            presence.since = at

    def disconnected(self, classroom_id: str, at: datetime) -> None:
        presence = self._classrooms.get(classroom_id)
        if presence is not None and presence.since is not None:
            presence.intervals.append((presence.since, at))
            presence.since = None

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

"""Attendance: each classroom's connected time inside the live lesson."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signaling.attendance import Attendance
from signaling.hooks import ClassroomInfo

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
ROSTER = [ClassroomInfo("r1", "一年级"), ClassroomInfo("r2", "二年级")]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_time_before_the_start_and_after_the_end_does_not_count() -> None:
    attendance = Attendance()
    attendance.joined("r1", at(-10))
    rows = attendance.report(ROSTER, started_at=at(0), ended_at=at(40))
    assert (rows[0].present_s, rows[0].joins) == (2400.0, 1)
    assert (rows[1].present_s, rows[1].joins) == (0.0, 0)


def test_a_lost_classroom_is_absent_until_it_resumes_and_a_rejoin_counts_again() -> None:
    attendance = Attendance()
    attendance.joined("r1", at(0))
    attendance.disconnected("r1", at(10))
    attendance.connected("r1", at(12))
    attendance.disconnected("r1", at(20))
    attendance.joined("r1", at(30))
    attendance.disconnected("r1", at(30))  # twice: the second has nothing to end
    attendance.disconnected("r1", at(31))
    rows = attendance.report(ROSTER, started_at=at(0), ended_at=at(45))
    assert rows[0].present_s == 18 * 60.0 and rows[0].joins == 2


def test_a_lesson_that_never_went_live_credits_nobody() -> None:
    attendance = Attendance()
    attendance.joined("r2", at(0))
    assert [r.present_s for r in attendance.report(ROSTER, None, at(5))] == [0.0, 0.0]

"""Attendance: each classroom's connected time inside the live lesson."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signaling.attendance import QUALITY_FLUSH_SAMPLES, Attendance, percentile
from signaling.hooks import ClassroomInfo, PresenceEvent, QualitySummary

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


def test_each_connection_change_is_recorded_once_in_order() -> None:
    records: list[object] = []
    attendance = Attendance("L", records.append)
    attendance.joined("r1", at(0))
    attendance.connected("r1", at(1))  # already connected: nothing new
    attendance.disconnected("r1", at(5), "lost")
    attendance.disconnected("r1", at(6), "gone")  # nothing open: nothing recorded
    attendance.connected("r1", at(7))
    attendance.disconnected("r1", at(9), "left")
    assert records == [
        PresenceEvent("L", "r1", at(0), "joined"),
        PresenceEvent("L", "r1", at(5), "lost"),
        PresenceEvent("L", "r1", at(7), "resumed"),
        PresenceEvent("L", "r1", at(9), "left"),
    ]


def test_quality_percentiles_are_written_every_flush_interval_and_at_the_end() -> None:
    records: list[object] = []
    attendance = Attendance("L", records.append)
    for n in range(QUALITY_FLUSH_SAMPLES):
        attendance.quality("r1", loss=n / 100, jitter_ms=float(n), rtt_ms=None)
    (first,) = records
    assert isinstance(first, QualitySummary)
    assert first.samples == QUALITY_FLUSH_SAMPLES
    assert first.loss_p50 == pytest.approx(0.29) and first.loss_p95 == pytest.approx(0.56)
    assert (first.rtt_p50_ms, first.rtt_p95_ms) == (None, None)
    attendance.flush()  # nothing new since
    assert len(records) == 1
    attendance.quality("r1", loss=0.0, jitter_ms=0.0, rtt_ms=30.0)
    attendance.flush()
    last = records[-1]
    assert isinstance(last, QualitySummary)
    assert (last.samples, last.rtt_p50_ms) == (QUALITY_FLUSH_SAMPLES + 1, 30.0)


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_classrooms_missing_past_the_deadline_and_late_ones_are_flagged() -> None:
    attendance = Attendance()
    roster = [*ROSTER, ClassroomInfo("r3", "三年级")]
    attendance.joined("r1", at(-5))  # waiting before the start: on time
    assert attendance.flags(roster, at(0), at(1), late_after_s=120) == []
    flags = attendance.flags(roster, at(0), at(2), late_after_s=120)
    assert [(f.classroom_id, f.status) for f in flags] == [("r2", "missing"), ("r3", "missing")]
    attendance.joined("r2", at(4))
    flags = attendance.flags(roster, at(0), at(5), late_after_s=120)
    assert [(f.classroom_id, f.status, f.late_s) for f in flags] == [
        ("r2", "late", 240.0),
        ("r3", "missing", None),
    ]
    assert attendance.flags(roster, None, at(5), late_after_s=120) == []

"""Helpers of the timetable tests: a district's rooms and teachers, terms, slots, lessons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import District


def period_times(period: int) -> tuple[str, str]:
    """Period n starts at 08:00 + 55 min * (n-1) and lasts 45 minutes."""
    start = 8 * 60 + 55 * (period - 1)
    end = start + 45
    return f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"


def slot_body(
    weekday: int,
    period: int,
    lead: str,
    teacher: str,
    receivers: list[str],
    **extra: Any,
) -> dict[str, Any]:
    starts, ends = period_times(period)
    return {
        "weekday": weekday,
        "period": period,
        "starts": starts,
        "ends": ends,
        "subject": "数学",
        "grade": "三年级",
        "lead_classroom_id": lead,
        "teacher_id": teacher,
        "receiver_classroom_ids": receivers,
        **extra,
    }


def term_lessons(district: District, first: str, last: str) -> list[dict[str, Any]]:
    response = district.client.get(
        "/api/lessons",
        params={"start_from": f"{first}T00:00:00+08:00", "start_to": f"{last}T23:59:59+08:00"},
        headers=district.headers("admin"),
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]

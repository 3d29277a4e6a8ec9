"""A whole term over HTTP: holidays, make-up days (调休), exceptions, regeneration, conflicts,
Beijing-midnight edges."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from timetable_support import error, slot_body, term_lessons

from server.db.models import utcnow
from server.lesson_hooks import DatabaseLessonHooks
from server.state import AppState

if TYPE_CHECKING:
    from conftest import District

FIRST, LAST = "2026-09-01", "2027-01-15"
HOLIDAYS = [
    {"first_day": "2026-09-25", "last_day": "2026-09-25", "name": "中秋节"},
    {"first_day": "2026-10-01", "last_day": "2026-10-07", "name": "国庆节"},
    {"first_day": "2027-01-01", "last_day": "2027-01-01", "name": "元旦"},
]
# 调休: Saturday 10-10 runs Wednesday's timetable.
MAKEUP = [{"day": "2026-10-10", "follows_weekday": 3, "name": "国庆调休"}]


@pytest.fixture
def rooms(district: District) -> dict[str, Any]:
    school = district.school()
    return {
        "lead": district.classroom(school, "lead"),
        "lead2": district.classroom(school, "lead"),
        "a": district.classroom(school, "receiving"),
        "b": district.classroom(school, "receiving"),
    }


@pytest.fixture
def term(district: District) -> dict[str, Any]:
    for existing in district.client.get("/api/terms", headers=district.headers("admin")).json():
        district.client.delete(f"/api/terms/{existing['id']}", headers=district.headers("admin"))
    body = {"name": "2026秋季学期", "first_day": FIRST, "last_day": LAST,
            "holidays": HOLIDAYS, "makeup_days": MAKEUP}  # fmt: skip
    return district.admin_post("/api/terms", body)


def _expected_days(weekday: int) -> list[date]:
    """Counted here without the planner: term days, minus holidays, plus make-up days."""
    off = set()
    for h in HOLIDAYS:
        day = date.fromisoformat(h["first_day"])
        while day <= date.fromisoformat(h["last_day"]):
            off.add(day)
            day += timedelta(days=1)
    days = []
    day = date.fromisoformat(FIRST)
    while day <= date.fromisoformat(LAST):
        if day not in off and day.isoweekday() == weekday:
            days.append(day)
        day += timedelta(days=1)
    days += [date.fromisoformat(m["day"]) for m in MAKEUP if m["follows_weekday"] == weekday]
    return sorted(days)


def _put(district: District, path: str, body: dict[str, Any]) -> Any:
    return district.client.put(path, json=body, headers=district.headers("admin"))


def test_a_whole_term_skips_holidays_runs_makeup_days_and_keeps_exceptions(
    district: District, rooms: dict[str, Any], term: dict[str, Any]
) -> None:
    teacher, other = district.ids["teacher"], district.ids["other_teacher"]
    monday = district.admin_post(
        f"/api/terms/{term['id']}/slots",
        slot_body(1, 1, rooms["lead"], teacher, [rooms["a"], rooms["b"]]),
    )
    wednesday = district.admin_post(
        f"/api/terms/{term['id']}/slots",
        slot_body(3, 2, rooms["lead"], teacher, [rooms["a"]], recording_policy="always"),
    )
    friday = district.admin_post(
        f"/api/terms/{term['id']}/slots", slot_body(5, 3, rooms["lead2"], other, [rooms["b"]])
    )
    lessons = term_lessons(district, FIRST, LAST)
    by_slot = Counter(lesson["slot_id"] for lesson in lessons)
    assert by_slot[monday["id"]] == len(_expected_days(1))
    assert by_slot[wednesday["id"]] == len(_expected_days(3))
    assert by_slot[friday["id"]] == len(_expected_days(5))
    days = {(lesson["slot_id"], lesson["slot_day"]) for lesson in lessons}
    # Nothing in the National Day week or on 中秋 (a Friday); Saturday 10-10 runs Wednesday.
    assert not any("2026-10-01" <= day <= "2026-10-07" for _, day in days)
    assert (friday["id"], "2026-09-25") not in days
    makeup = next(x for x in lessons if x["slot_day"] == "2026-10-10")
    assert makeup["slot_id"] == wednesday["id"]
    # Period 2 at 08:55 Beijing time is 00:55 UTC; the policy travels with the lesson.
    assert makeup["scheduled_start"].startswith("2026-10-10T00:55:00")
    assert makeup["recording_policy"] == "always"
    teaching = term["teaching_days"]
    assert (
        teaching
        == district.client.get(
            f"/api/terms/{term['id']}", headers=district.headers("admin")
        ).json()["teaching_days"]
    )

    # Exceptions: cancel one Monday, move one Wednesday to Thursday period 4, substitute.
    sid = lambda slot: f"/api/slots/{slot['id']}/exceptions"  # noqa: E731
    assert _put(district, f"{sid(monday)}/2026-09-07", {"action": "cancel"}).status_code == 200
    moved = _put(district, f"{sid(wednesday)}/2026-09-09",
                 {"action": "move", "new_day": "2026-09-10", "new_starts": "10:45",
                  "new_ends": "11:30"})  # fmt: skip
    assert moved.status_code == 200, moved.text
    sub = _put(district, f"{sid(friday)}/2026-09-11", {"action": "substitute",
                                                      "teacher_id": teacher})  # fmt: skip
    assert sub.status_code == 200, sub.text

    def check_exceptions() -> list[dict[str, Any]]:
        now = term_lessons(district, FIRST, LAST)
        keyed = {(x["slot_id"], x["slot_day"]): x for x in now}
        assert (monday["id"], "2026-09-07") not in keyed
        move = keyed[(wednesday["id"], "2026-09-09")]
        assert move["scheduled_start"] == "2026-09-10T02:45:00Z"
        assert keyed[(friday["id"], "2026-09-11")]["teacher_id"] == teacher
        return now

    before = check_exceptions()
    again = district.admin_post(f"/api/terms/{term['id']}/generate", {})
    assert again == {"created": 0, "updated": 0, "removed": 0, "kept": 0, "lessons": len(before)}
    # The slot's teacher changes: every scheduled lesson follows except the substituted one.
    changed = district.client.patch(
        f"/api/slots/{friday['id']}", json={"teacher_id": district.ids["teacher"]},
        headers=district.headers("admin"),
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    district.client.patch(
        f"/api/slots/{friday['id']}", json={"teacher_id": other}, headers=district.headers("admin")
    )
    check_exceptions()
    assert len(term_lessons(district, FIRST, LAST)) == len(before)


def test_a_taught_lesson_stays_as_it_was_when_its_slot_changes(
    district: District, rooms: dict[str, Any]
) -> None:
    # A term of its own: one of its lessons goes live, so it stays on record for good.
    body = {"name": "2036秋季学期", "first_day": "2036-09-01", "last_day": "2036-09-30"}
    term = district.admin_post("/api/terms", body)
    slot = district.admin_post(
        f"/api/terms/{term['id']}/slots",
        slot_body(2, 1, rooms["lead"], district.ids["teacher"], [rooms["a"]]),
    )
    first = term_lessons(district, "2036-09-01", "2036-09-30")[0]

    async def go_live(state: AppState) -> None:
        await DatabaseLessonHooks(state.db).lesson_started(first["id"], utcnow())

    district.run(go_live)
    response = district.client.patch(
        f"/api/slots/{slot['id']}", json={"weekday": 4}, headers=district.headers("admin")
    )
    assert response.status_code == 200, response.text
    assert response.json()["generated"]["kept"] == 1
    lessons = term_lessons(district, "2036-09-01", "2036-09-30")
    assert first["id"] in {x["id"] for x in lessons}
    weekdays = {date.fromisoformat(x["slot_day"]).isoweekday() for x in lessons}
    assert weekdays == {2, 4}
    assert len([x for x in lessons if x["slot_day"] <= "2036-09-02"]) == 1
    refused = district.client.delete(f"/api/terms/{term['id']}", headers=district.headers("admin"))
    assert error(refused) == (409, "term_in_use")


def test_double_booking_is_refused_naming_both_slots(
    district: District, rooms: dict[str, Any], term: dict[str, Any]
) -> None:
    teacher, other = district.ids["teacher"], district.ids["other_teacher"]
    url = f"/api/terms/{term['id']}/slots"
    district.admin_post(url, slot_body(1, 2, rooms["lead"], teacher, [rooms["a"]]))
    # Same receiving classroom, same time, another lead and teacher.
    clash = district.client.post(
        url, json=slot_body(1, 2, rooms["lead2"], other, [rooms["a"]]),
        headers=district.headers("admin"),
    )  # fmt: skip
    assert error(clash) == (409, "timetable_conflict")
    message = clash.json()["error"]["message"]
    assert message.count("Mon period 2 (08:55-09:40, 数学 三年级)") == 2
    assert "classroom" in message
    # Same teacher in another classroom at once.
    teacher_clash = district.client.post(
        url, json=slot_body(1, 2, rooms["lead2"], teacher, [rooms["b"]]),
        headers=district.headers("admin"),
    )  # fmt: skip
    assert error(teacher_clash) == (409, "timetable_conflict")
    assert "teacher" in teacher_clash.json()["error"]["message"]
    # A move onto another lesson's time is refused too, and nothing is kept.
    tuesday = district.admin_post(url, slot_body(2, 2, rooms["lead2"], other, [rooms["a"]]))
    moved = _put(district, f"/api/slots/{tuesday['id']}/exceptions/2026-09-08",
                 {"action": "move", "new_day": "2026-09-07"})  # fmt: skip
    assert error(moved) == (409, "timetable_conflict")
    assert "2026-09-07" in moved.json()["error"]["message"]
    listed = district.client.get(
        f"/api/slots/{tuesday['id']}/exceptions", headers=district.headers("admin")
    )
    assert listed.json() == []


def test_bad_calendars_slots_and_exceptions_have_their_own_codes(
    district: District, rooms: dict[str, Any], term: dict[str, Any]
) -> None:
    admin = district.headers("admin")
    outside = {"name": "坏学期", "first_day": "2031-02-20", "last_day": "2031-07-01",
               "holidays": [{"first_day": "2031-08-01", "last_day": "2031-08-02"}]}  # fmt: skip
    response = district.client.post("/api/terms", json=outside, headers=admin)
    assert error(response) == (422, "day_outside_term")
    assert "2031-08-01..2031-08-02" in response.json()["error"]["message"]
    overlap = {"name": "重叠", "first_day": "2026-12-01", "last_day": "2027-03-01"}
    assert error(district.client.post("/api/terms", json=overlap, headers=admin)) == (
        409,
        "term_overlap",
    )
    url = f"/api/terms/{term['id']}/slots"
    ghost = slot_body(1, 1, rooms["lead"], "f" * 32, [rooms["a"]])
    assert error(district.client.post(url, json=ghost, headers=admin)) == (404, "account_not_found")
    nowhere = slot_body(1, 1, "e" * 32, district.ids["teacher"], [rooms["a"]])
    assert error(district.client.post(url, json=nowhere, headers=admin)) == (
        404,
        "classroom_not_found",
    )
    backwards = slot_body(1, 1, rooms["lead"], district.ids["teacher"], [], starts="09:00",
                          ends="08:00")  # fmt: skip
    assert error(district.client.post(url, json=backwards, headers=admin)) == (
        422,
        "invalid_schedule",
    )
    slot = district.admin_post(url, slot_body(1, 1, rooms["lead"], district.ids["teacher"], []))
    wrong_day = _put(
        district, f"/api/slots/{slot['id']}/exceptions/2026-09-08", {"action": "cancel"}
    )
    assert error(wrong_day) == (422, "not_a_slot_day")
    holiday = _put(district, f"/api/slots/{slot['id']}/exceptions/2026-09-07",
                   {"action": "move", "new_day": "2026-10-02"})  # fmt: skip
    assert error(holiday) == (422, "not_a_teaching_day")
    teacherless = _put(district, f"/api/slots/{slot['id']}/exceptions/2026-09-07",
                       {"action": "substitute"})  # fmt: skip
    assert error(teacherless) == (422, "teacher_required")
    by_teacher = slot_body(1, 2, rooms["lead"], district.ids["teacher"], [])
    refused = district.client.post(url, json=by_teacher, headers=district.headers("teacher"))
    assert refused.status_code == 403


def test_an_early_period_on_a_beijing_day_is_that_day_though_utc_says_the_day_before(
    district: District, rooms: dict[str, Any], term: dict[str, Any]
) -> None:
    """早读 at 07:10 Beijing time on Monday 09-07 is 23:10 UTC on Sunday 09-06."""
    body = slot_body(1, 1, rooms["lead"], district.ids["teacher"], [], starts="07:10",
                     ends="07:50")  # fmt: skip
    slot = district.admin_post(f"/api/terms/{term['id']}/slots", body)
    response = district.client.get(
        "/api/lessons", params={"date": "2026-09-07"}, headers=district.headers("admin")
    )
    found = [x for x in response.json() if x["slot_id"] == slot["id"]]
    assert len(found) == 1
    assert found[0]["scheduled_start"] == "2026-09-06T23:10:00Z"
    assert found[0]["slot_day"] == "2026-09-07"
    start = datetime.fromisoformat(found[0]["scheduled_start"])
    assert start.astimezone(UTC).date() == date(2026, 9, 6)

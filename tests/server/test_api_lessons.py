"""Lessons over HTTP: validation, filters and the scheduled -> live -> ended transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from server.db.models import utcnow
from server.lesson_hooks import DatabaseLessonHooks
from server.state import AppState

if TYPE_CHECKING:
    from conftest import District


def _go_live(district: District, lesson_id: str) -> None:
    async def start(state: AppState) -> None:
        await DatabaseLessonHooks(state.db).lesson_started(lesson_id, utcnow())

    district.run(start)


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_created_lesson_comes_back_with_its_roster_and_metadata(district: District) -> None:
    body = district.lesson_body(receivers=3)
    lesson = district.admin_post("/api/lessons", body)
    assert lesson["state"] == "scheduled"
    assert lesson["teacher"] == "王老师"
    assert lesson["lead"]["id"] == body["lead_classroom_id"]
    assert [r["id"] for r in lesson["receivers"]] == body["receiver_classroom_ids"]
    assert (lesson["subject"], lesson["grade"], lesson["volume"]) == ("数学", "三年级", "上册")
    fetched = district.client.get(
        f"/api/lessons/{lesson['id']}", headers=district.headers("inspector")
    )
    assert fetched.json() == lesson


def test_a_teacher_schedules_his_own_lesson_without_naming_himself(district: District) -> None:
    body = district.lesson_body()
    del body["teacher_id"]
    response = district.client.post("/api/lessons", json=body, headers=district.headers("teacher"))
    assert response.status_code == 201
    assert response.json()["teacher_id"] == district.ids["teacher"]
    response = district.client.post("/api/lessons", json=body, headers=district.headers("admin"))
    assert _error(response) == (422, "teacher_required")


def test_bad_lessons_are_refused_with_their_own_codes(district: District) -> None:
    def attempt(**changes: Any) -> tuple[int, str]:
        body = {**district.lesson_body(), **changes}
        return _error(
            district.client.post("/api/lessons", json=body, headers=district.headers("admin"))
        )

    start = datetime.now(UTC) + timedelta(days=1)
    assert attempt(scheduled_start=start.isoformat(), scheduled_end=start.isoformat()) == (
        422,
        "invalid_schedule",
    )
    assert attempt(scheduled_start="2026-09-01T08:00:00") == (422, "invalid_request")
    lead = district.classroom(kind="lead")
    assert attempt(lead_classroom_id=lead, receiver_classroom_ids=[lead]) == (
        422,
        "roster_duplicate",
    )
    assert attempt(receiver_classroom_ids=["nope"]) == (404, "classroom_not_found")
    assert attempt(lead_classroom_id=district.classroom(kind="receiving")) == (
        422,
        "classroom_not_lead_capable",
    )
    assert attempt(receiver_classroom_ids=[district.classroom(kind="lead")]) == (
        422,
        "classroom_not_receiving",
    )
    assert attempt(teacher_id=district.ids["inspector"]) == (422, "not_a_teacher")
    assert attempt(title="") == (422, "invalid_request")
    assert attempt(unexpected="field") == (422, "invalid_request")


def test_lessons_filter_by_local_day_state_and_teacher(district: District) -> None:
    body = district.lesson_body()
    # 2030-03-04 23:30 in China is 15:30 UTC the same day; 00:30 the next day is 16:30 UTC.
    body["scheduled_start"] = "2030-03-04T23:30:00+08:00"
    body["scheduled_end"] = "2030-03-05T00:15:00+08:00"
    late = district.admin_post("/api/lessons", body)
    body["scheduled_start"] = "2030-03-05T00:30:00+08:00"
    body["scheduled_end"] = "2030-03-05T01:15:00+08:00"
    next_day = district.admin_post("/api/lessons", body)

    def ids(**params: Any) -> list[str]:
        response = district.client.get(
            "/api/lessons", params=params, headers=district.headers("teacher")
        )
        assert response.status_code == 200, response.text
        return [lesson["id"] for lesson in response.json()]

    assert ids(date="2030-03-04") == [late["id"]]
    assert ids(date="2030-03-05") == [next_day["id"]]
    assert ids(date="2030-03-04", utc_offset_minutes=0) == [late["id"], next_day["id"]]
    assert ids(date="2030-03-05", state="live") == []
    # Exactly Beijing midnight belongs to the new day; one minute before, to the old one.
    body["scheduled_start"] = "2030-03-06T00:00:00+08:00"
    body["scheduled_end"] = "2030-03-06T00:45:00+08:00"
    midnight = district.admin_post("/api/lessons", body)
    body["scheduled_start"] = "2030-03-05T23:59:00+08:00"
    body["scheduled_end"] = "2030-03-06T00:30:00+08:00"
    minute_before = district.admin_post("/api/lessons", body)
    assert ids(date="2030-03-06") == [midnight["id"]]
    assert minute_before["id"] in ids(date="2030-03-05")
    assert next_day["id"] in ids(state="scheduled", teacher_id=district.ids["teacher"])
    assert ids(teacher_id=district.ids["other_teacher"]) == []
    response = district.client.get(
        "/api/lessons", params={"state": "paused"}, headers=district.headers("teacher")
    )
    assert _error(response) == (422, "invalid_request")


def test_ending_a_lesson_twice_is_a_conflict(district: District) -> None:
    lesson = district.lesson()
    path = f"/api/lessons/{lesson['id']}/end"
    ended = district.client.post(path, headers=district.headers("teacher"))
    assert ended.status_code == 200
    assert ended.json()["state"] == "ended" and ended.json()["ended_at"] is not None
    assert _error(district.client.post(path, headers=district.headers("admin"))) == (
        409,
        "lesson_ended",
    )


def test_a_live_lesson_keeps_its_roster_but_not_its_title(district: District) -> None:
    lesson = district.lesson()
    _go_live(district, lesson["id"])
    path = f"/api/lessons/{lesson['id']}"
    admin = district.headers("admin")
    assert district.client.get(path, headers=admin).json()["state"] == "live"
    response = district.client.patch(path, json={"receiver_classroom_ids": []}, headers=admin)
    assert _error(response) == (409, "lesson_live")
    assert _error(district.client.delete(path, headers=admin)) == (409, "lesson_live")
    response = district.client.patch(path, json={"title": "口算乘法（二）"}, headers=admin)
    assert response.status_code == 200 and response.json()["title"] == "口算乘法（二）"
    ended = district.client.post(f"{path}/end", headers=admin).json()
    assert ended["started_at"] is not None and ended["state"] == "ended"
    assert _error(district.client.delete(path, headers=admin)) == (409, "lesson_ended")


def test_a_scheduled_lesson_can_change_roster_and_time(district: District) -> None:
    lesson = district.lesson(receivers=2)
    new_receiver = district.classroom(kind="receiving")
    start = datetime.now(UTC) + timedelta(days=2)
    response = district.client.patch(
        f"/api/lessons/{lesson['id']}",
        json={
            "receiver_classroom_ids": [new_receiver, lesson["receivers"][0]["id"]],
            "scheduled_start": start.isoformat(),
            "scheduled_end": (start + timedelta(minutes=40)).isoformat(),
        },
        headers=district.headers("teacher"),
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert [r["id"] for r in changed["receivers"]] == [new_receiver, lesson["receivers"][0]["id"]]
    assert datetime.fromisoformat(changed["scheduled_start"]) == start
    response = district.client.patch(
        f"/api/lessons/{lesson['id']}",
        json={"scheduled_end": (start - timedelta(minutes=1)).isoformat()},
        headers=district.headers("teacher"),
    )
    assert _error(response) == (422, "invalid_schedule")


def test_only_an_admin_hands_a_lesson_to_another_teacher(district: District) -> None:
    lesson = district.lesson()
    path = f"/api/lessons/{lesson['id']}"
    body = {"teacher_id": district.ids["other_teacher"]}
    response = district.client.patch(path, json=body, headers=district.headers("teacher"))
    assert _error(response) == (403, "forbidden")
    response = district.client.patch(path, json=body, headers=district.headers("admin"))
    assert response.json()["teacher"] == "张老师"
    # Now the first teacher is the other teacher for this lesson.
    response = district.client.patch(path, json={"title": "x"}, headers=district.headers("teacher"))
    assert _error(response) == (403, "forbidden")


def test_an_unknown_lesson_is_lesson_not_found(district: District) -> None:
    response = district.client.get("/api/lessons/nope", headers=district.headers("admin"))
    assert _error(response) == (404, "lesson_not_found")

"""The lead page follows the timetable's recording policy: a lesson whose slot says
`never` shows no 开始录制 button, only why; a `teacher` lesson keeps the button."""

from __future__ import annotations

from contextlib import closing
from datetime import date, timedelta
from typing import Any

import pytest
from browser_harness import District, LiveServer, join_classroom

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def term(live_server: LiveServer, district: District) -> tuple[str, int]:
    """A term around today (today a 调休 day when it is a weekend): its id and the weekday
    whose slots run today."""
    today = date.today()
    weekday = today.isoweekday()
    body: dict[str, Any] = {
        "name": "本学期",
        "first_day": (today - timedelta(days=7)).isoformat(),
        "last_day": (today + timedelta(days=7)).isoformat(),
    }
    if weekday > 5:
        body["makeup_days"] = [{"day": today.isoformat(), "follows_weekday": 1, "name": "调休"}]
        weekday = 1
    with closing(live_server.http("admin")) as admin:
        return live_server.post(admin, "/api/terms", body)["id"], weekday


def timetabled_lesson(
    live_server: LiveServer, district: District, term: tuple[str, int], policy: str
) -> str:
    """A slot today with this recording policy: the lead's join code of today's lesson."""
    term_id, weekday = term
    today = date.today()
    with closing(live_server.http("admin")) as admin:
        period = {"never": 1, "teacher": 2}[policy]
        live_server.post(
            admin,
            f"/api/terms/{term_id}/slots",
            {
                "weekday": weekday,
                "period": period,
                "starts": f"{7 + period:02d}:00",
                "ends": f"{7 + period:02d}:45",
                "title": f"录制 {policy}",
                "lead_classroom_id": district.lead["id"],
                "teacher_id": district.teacher_id,
                "receiver_classroom_ids": [r["id"] for r in district.receivers],
                "recording_policy": policy,
            },
        )
        lessons = admin.get("/api/lessons", params={"date": today.isoformat()}).json()
        (lesson,) = [item for item in lessons if item["title"] == f"录制 {policy}"]
        assert lesson["recording_policy"] == policy
        roster = live_server.post(admin, f"/api/lessons/{lesson['id']}/links/roster", {})
    return next(link["code"] for link in roster if link["role"] == "lead")


def test_a_never_recorded_lesson_shows_no_record_button(
    open_page: Any, live_server: LiveServer, district: District, term: tuple[str, int]
) -> None:
    lead = join_classroom(open_page(), timetabled_lesson(live_server, district, term, "never"))
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#no-recording:not(.hidden)")
    assert lead.page.is_hidden("#toggle-recording")
    assert lead.page.inner_text("#no-recording") == "按课表设置，本节课不录制"
    lead.screenshot("lead-recording-never")
    assert lead.errors == []


def test_a_teacher_decides_lesson_keeps_the_record_button(
    open_page: Any, live_server: LiveServer, district: District, term: tuple[str, int]
) -> None:
    lead = join_classroom(open_page(), timetabled_lesson(live_server, district, term, "teacher"))
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#toggle-recording:not([disabled])")
    assert lead.page.is_hidden("#no-recording")

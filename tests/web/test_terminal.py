"""Classroom terminals in Chromium: an enrolled receiving classroom's terminal joins its
lesson by itself at the scheduled time and plays the lead's video, the lead classroom's
terminal opens the lead's screen and starts the lesson at its time (start_mode "time"),
both go back to their schedule after the lesson, a reload during the lesson rejoins, a
revoked terminal is refused and shows how to enroll again, and a device whose clock is far
off says so.

The settable clock: clock_offset_s (changed while the service runs) puts the service on a
fixed Monday morning in Beijing, 38 s before a timetabled 10:00 lesson, and each page's
clock is set to the service's (Playwright's clock), so no test waits for minutes and none
depends on the day it runs. terminal_join_before_s
is 10 s here, so the countdown, the join and the start fit in half a minute.
Screenshots of every state go to test-artifacts/web/terminal-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from browser_harness import District, LiveServer, PageWatch, sign_in, wait_js

pytestmark = pytest.mark.browser

JOIN_BEFORE_S = 10
BEIJING = ZoneInfo("Asia/Shanghai")
SCHOOL_DAY = date(2027, 3, 1)  # a Monday
SCHOOL_MORNING = datetime.combine(SCHOOL_DAY, time(9, 0), BEIJING)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    offset = (SCHOOL_MORNING - datetime.now(UTC)).total_seconds()
    server = LiveServer(
        tmp_path_factory.mktemp("web-data"),
        clock_offset_s=offset,
        terminal_join_before_s=JOIN_BEFORE_S,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def service_now(server: LiveServer) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=server.settings.clock_offset_s)


def enroll_code(admin: httpx.Client, server: LiveServer, classroom_id: str) -> str:
    return str(server.post(admin, f"/api/classrooms/{classroom_id}/terminal-codes", {})["code"])


def enrolled(
    server: LiveServer, admin: httpx.Client, classroom_id: str, name: str
) -> dict[str, Any]:
    code = enroll_code(admin, server, classroom_id)
    response = admin.post("/api/terminal/enroll", json={"code": code, "name": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def terminal_page(
    open_page: Any, server: LiveServer, device: dict[str, Any] | None, *, clock: bool = True
) -> PageWatch:
    """A fresh browser (its own localStorage) holding `device`'s credential, its clock set to
    the service's unless `clock` is False (a PC whose clock was never set)."""
    watch = open_page()
    if device is not None:
        saved = {"credential": device["credential"], "terminal_id": device["terminal"]["id"],
                 "classroom": device["classroom"]}  # fmt: skip
        key = "'tongke.terminal'"
        watch.page.context.add_init_script(
            f"if (!localStorage.getItem({key})) localStorage.setItem({key}, {_js(saved)});"
        )
    if clock:
        watch.page.clock.install(time=service_now(server))
    return watch


def _js(value: Any) -> str:
    import json

    return json.dumps(json.dumps(value))


def video_advances(watch: PageWatch, selector: str) -> None:
    wait_js(watch, f"document.querySelector({selector!r})?.videoWidth > 0", 30_000)
    before = watch.page.evaluate(f"document.querySelector({selector!r}).currentTime")
    wait_js(watch, f"document.querySelector({selector!r}).currentTime > {before} + 0.5", 10_000)


def set_service_clock(server: LiveServer, at: datetime) -> None:
    """The settable clock: the service's schedule clock reads `at` now, and runs on."""
    server.settings.clock_offset_s = (at - datetime.now(UTC)).total_seconds()


def timetabled_lesson(server: LiveServer, district: District) -> dict[str, Any]:
    """A term around SCHOOL_DAY with one Monday slot at 10:00 that starts at its time: the
    lesson generated for SCHOOL_DAY."""
    with closing(server.http("admin")) as admin:
        term = server.post(admin, "/api/terms", {
            "name": "2027 春季学期", "first_day": "2027-02-22", "last_day": "2027-07-02",
        })  # fmt: skip
        server.post(admin, f"/api/terms/{term['id']}/slots", {
            "weekday": 1, "period": 3, "starts": "10:00", "ends": "10:40",
            "title": "认识钟表", "subject": "数学", "grade": "一年级",
            "lead_classroom_id": district.lead["id"], "teacher_id": district.teacher_id,
            "receiver_classroom_ids": [r["id"] for r in district.receivers],
            "start_mode": "time",
        })  # fmt: skip
        lessons = admin.get("/api/lessons", params={"date": SCHOOL_DAY.isoformat()}).json()
    (lesson,) = [item for item in lessons if item["title"] == "认识钟表"]
    assert lesson["start_mode"] == "time"
    return lesson  # type: ignore[no-any-return]


def test_terminals_join_by_themselves_play_the_lead_and_return_after_the_lesson(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    lesson = timetabled_lesson(live_server, district)
    with closing(live_server.http("admin")) as admin:
        lead_device = enrolled(live_server, admin, district.lead["id"], "录播教室主机")
        code = enroll_code(admin, live_server, district.receivers[0]["id"])
    # 38 s before the start: the countdown, then the join 10 s before it.
    set_service_clock(live_server, datetime.combine(SCHOOL_DAY, time(9, 59, 22), BEIJING))

    # The receiving classroom's PC is enrolled on its own page, from the QR's URL.
    receiver = terminal_page(open_page, live_server, None)
    receiver.page.goto(f"/terminal/?enroll={code}")
    receiver.page.wait_for_selector("#terminal-enroll")
    assert receiver.page.input_value("#enroll-code") == code
    receiver.page.fill("#enroll-name", "一年级一体机")
    receiver.screenshot("terminal-enroll")
    receiver.page.keyboard.press("Enter")
    receiver.page.wait_for_selector("#terminal-next[data-state=countdown]")
    assert receiver.page.get_attribute("#terminal-next", "data-lesson") == lesson["id"]
    assert receiver.page.inner_text("#terminal-lesson-title") == "认识钟表"
    assert "距离上课还有" in receiver.page.inner_text("#terminal-countdown")
    assert receiver.page.is_hidden("#clock-warning")
    receiver.screenshot("terminal-countdown")

    lead = terminal_page(open_page, live_server, lead_device)
    lead.page.goto("/terminal/")
    lead.page.wait_for_selector("#terminal-next[data-state=countdown]")
    assert "自动打开主讲准备界面" in lead.page.inner_text("#terminal-auto")

    # join_before_s before the start both go in by themselves.
    receiver.page.wait_for_url("**/receiver/", timeout=30_000)
    lead.page.wait_for_url("**/lead/", timeout=30_000)
    lead.page.wait_for_selector("#not-started[data-auto=time]")
    lead.screenshot("terminal-lead-ready")
    receiver.page.wait_for_selector("#conn-state[data-state=joined]", timeout=15_000)
    receiver.screenshot("terminal-joining")
    # At its time the lead's page starts the lesson; the receiver plays the lead's video.
    lead.page.wait_for_selector("#start-lesson.hidden", state="attached", timeout=30_000)
    video_advances(receiver, "#lead-video video")
    receiver.screenshot("terminal-in-lesson")

    # A power cut: the PC comes back to its start page and finds the lesson live.
    receiver.page.goto("/terminal/")
    receiver.page.wait_for_url("**/receiver/", timeout=20_000)
    video_advances(receiver, "#lead-video video")

    # The teacher ends the lesson on the lead's screen.
    lead.page.once("dialog", lambda dialog: dialog.accept())
    lead.page.click("#end-lesson")
    receiver.page.wait_for_selector("#lesson-ended")
    receiver.page.wait_for_selector("#back-to-schedule:focus")
    receiver.screenshot("terminal-ended")
    lead.page.wait_for_selector("#back-to-schedule")
    lead.page.keyboard.press("Enter")  # the focused button: no mouse needed
    lead.page.wait_for_url("**/terminal/")
    # The receiver goes back by itself.
    receiver.page.wait_for_url("**/terminal/", timeout=30_000)
    receiver.page.wait_for_selector("#terminal-lessons tr[data-state=ended]")
    assert receiver.page.inner_text("#no-more") == "今天的课已经全部结束。"
    receiver.screenshot("terminal-after-lesson")
    assert receiver.errors == [] and lead.errors == []


def test_a_revoked_terminal_is_refused_and_shows_how_to_enroll_again(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    with closing(live_server.http("admin")) as admin:
        device = enrolled(live_server, admin, district.receivers[1]["id"], "二年级一体机")
    watch = terminal_page(open_page, live_server, device)
    watch.page.goto("/terminal/")
    watch.page.wait_for_selector("#terminal-room")
    with closing(live_server.http("admin")) as admin:
        assert admin.delete(f"/api/terminals/{device['terminal']['id']}").status_code == 204
    watch.page.reload()
    watch.page.wait_for_selector("#terminal-enroll")
    assert "撤销" in watch.page.inner_text("#terminal-refused")
    assert "生成登记码" in watch.page.inner_text("#enroll-steps")
    assert watch.page.evaluate("localStorage.getItem('tongke.terminal')") is None
    assert watch.page.evaluate("document.activeElement.id") == "enroll-code"
    watch.screenshot("terminal-revoked")


def test_a_device_clock_far_off_is_warned_about(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    with closing(live_server.http("admin")) as admin:
        device = enrolled(live_server, admin, district.receivers[1]["id"], "时钟不准的电脑")
    # Its clock was never set: the real date, months away from the service's morning.
    watch = terminal_page(open_page, live_server, device, clock=False)
    watch.page.goto("/terminal/")
    watch.page.wait_for_selector("#clock-warning:not(.hidden)")
    text = watch.page.inner_text("#clock-warning")
    assert "本机时钟不准" in text and "2027/03/01 1" in text and "自动同步" in text
    # The schedule still runs on the service's clock.
    assert watch.page.inner_text("#terminal-clock").startswith(("09:", "10:"))
    watch.screenshot("terminal-clock-off")


def test_the_admin_lists_terminals_makes_a_code_and_revokes(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    room = district.receivers[1]
    with closing(live_server.http("admin")) as admin:
        device = enrolled(live_server, admin, room["id"], "后墙一体机")
    watch = open_page()
    sign_in(watch, "admin")
    page = watch.page
    page.goto("/admin/")
    page.click("#tab-classrooms")
    page.click(f"tr[data-id='{room['id']}'] button.terminals")
    row = f"#terminals-table tr[data-terminal='{device['terminal']['id']}']"
    page.wait_for_selector(row)
    assert "后墙一体机" in page.inner_text(row) and "使用中" in page.inner_text(row)
    page.click("#new-terminal-code")
    page.wait_for_selector("#terminal-code .qr svg")
    code = page.inner_text("#terminal-code-text")
    assert len(code) == 9 and code[4] == "-"
    watch.screenshot("terminal-admin")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{row} button.revoke-terminal")
    page.wait_for_selector(f"{row}[data-revoked=true]")
    assert "已撤销" in page.inner_text(row)
    assert watch.errors == []


def test_a_teacher_sees_my_timetable_for_the_week(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    watch = open_page()
    sign_in(watch, "teacher")
    watch.page.wait_for_selector(f"#my-week tr[data-lesson='{district.lesson['id']}']")
    assert "分数的初步认识" in watch.page.inner_text("#my-week")
    watch.screenshot("terminal-my-week")
    assert watch.errors == []

"""The lesson report and the late/missing warning in real Chromium: the lead hears who is
missing, then who came late; after the lesson the report page shows each classroom's
attendance as it happened. Screenshots: test-artifacts/web/lesson-report-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_harness import District, LiveServer, join_classroom, sign_in

pytestmark = pytest.mark.browser

LATE_AFTER_S = 3.0


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("web-data"), attendance_late_after_s=LATE_AFTER_S)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_lead_is_told_who_is_missing_and_late_and_the_report_shows_it(
    open_page: Any, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    first = join_classroom(open_page(), lesson.links["receiver1"])
    lead.page.click("#start-lesson")
    second_name = lesson.receivers[1]["name"]
    banner = lead.page.locator("#attendance-banner")
    banner.wait_for(state="visible", timeout=15_000)
    assert banner.inner_text() == f"未到：{second_name}"
    lead.screenshot("lesson-report-lead-missing")

    late = join_classroom(open_page(), lesson.links["receiver2"])
    lead.page.wait_for_selector("#attendance-banner:has-text('迟到')", timeout=15_000)
    assert second_name in banner.inner_text() and "未到" not in banner.inner_text()
    lead.screenshot("lesson-report-lead-late")

    lead.page.once("dialog", lambda dialog: dialog.accept())
    lead.page.click("#end-lesson")
    lead.page.wait_for_selector("#lesson-ended", timeout=15_000)
    for page in (first, late):
        page.page.wait_for_selector("#lesson-ended", timeout=15_000)

    admin = open_page(width=1440, height=900)
    sign_in(admin, "admin")
    admin.page.goto(f"/lesson-report/?id={lesson.lesson['id']}")
    admin.page.wait_for_selector("#report-table")
    rows = admin.page.locator("#report-table tbody tr")
    statuses = {
        rows.nth(i).get_attribute("data-classroom"): rows.nth(i).get_attribute("data-status")
        for i in range(rows.count())
    }
    assert statuses == {
        lesson.lead["id"]: "present",
        lesson.receivers[0]["id"]: "present",
        lesson.receivers[1]["id"]: "late",
    }
    counts = admin.page.inner_text("#report-counts")
    assert "出席" in counts and "迟到" in counts and "缺席" in counts
    admin.screenshot("lesson-report-ended")
    assert admin.errors == []
    assert lead.errors == []

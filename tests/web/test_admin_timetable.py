"""管理 → 课表 in real Chromium with the CSP enforced: a district admin creates a term, adds a
1+N slot in the week grid and sees it in its cell; a second slot needing the same classroom
and teacher at once is refused with the Chinese conflict sentence naming both slots; a sheet
with a wrong header is refused naming row 1 and column C in Chinese, and the grid is kept.
Screenshot: test-artifacts/web/admin-timetable-grid.png."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_harness import PASSWORD, District

pytestmark = pytest.mark.browser

HEADERS = "星期,节次,开始时间,结束,学科,年级,课题,主讲教室,主讲教师账号,接收教室,录制,开始方式"


def _banner(page: Any, text: str) -> str:
    page.wait_for_selector(f"#page-banner.error:has-text('{text}')", timeout=10_000)
    return str(page.text_content("#page-banner"))


def _new_slot(page: Any, weekday: int, period: int, subject: str, district: District) -> None:
    page.click(f"td[data-weekday='{weekday}'][data-period='{period}'] .tt-add")
    page.wait_for_selector("#tt-slot-form")
    page.fill("#tt-f-subject", subject)
    page.fill("#tt-f-grade", "三年级")
    page.select_option("#tt-f-lead", district.lead["id"])
    page.select_option("#tt-f-teacher", district.teacher_id)
    page.select_option("#tt-f-receivers", [r["id"] for r in district.receivers])
    page.click("#tt-save")


def test_an_admin_builds_the_week_grid(open_page: Any, district: District) -> None:
    admin = open_page(width=1366, height=900, enforce_csp=True)
    page = admin.page
    # sign_in waits with a string predicate, which the enforced CSP forbids.
    page.goto("/login/")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == "/", timeout=10_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/admin/")
    page.click("#tab-timetable")
    page.wait_for_selector("#tt-new-term")
    page.fill("#tt-term-name", "2027 春季学期")
    page.fill("#tt-term-first", "2027-03-01")
    page.fill("#tt-term-last", "2027-07-09")
    page.click("#tt-new-term button[type=submit]")
    page.wait_for_selector("#tt-grid")
    assert "2027-03-01" in str(page.text_content("#tt-term-info"))
    assert page.locator("#tt-grid thead th").all_inner_texts()[1:] == [
        "周一", "周二", "周三", "周四", "周五",
    ]  # fmt: skip

    _new_slot(page, 1, 2, "数学", district)
    cell = page.locator("td[data-weekday='1'][data-period='2'] .tt-slot")
    cell.wait_for()
    text = cell.inner_text()
    for shown in ("数学 三年级", "城关中心校 录播教室", "王老师", "山口教学点 一年级教室"):
        assert shown in text, text
    admin.screenshot("admin-timetable-slot")

    # The same classroom and teacher twice on Monday, period 2: refused, both named.
    page.click("#tt-editor button:has-text('关闭')")
    _new_slot(page, 1, 2, "语文", district)
    message = _banner(page, "课表冲突")
    assert "周一第 2 节（08:50-09:30 数学 三年级）" in message, message
    assert "周一第 2 节（08:50-09:30 语文 三年级）" in message, message
    assert "Mon period" not in message
    assert page.locator("td[data-weekday='1'][data-period='2'] .tt-slot").count() == 1

    # A sheet whose column C says 开始时间: row 1, column C named; nothing changed.
    row = "周一,3,09:50,10:30,语文,三年级,,城关中心校/录播教室,teacher,,教师决定,教师点击"
    sheet = f"{HEADERS}\n{row}\n"
    page.set_input_files(
        "#tt-import-file",
        files=[{"name": "课表.csv", "mimeType": "text/csv", "buffer": sheet.encode("utf-8-sig")}],
    )
    page.click("#tt-import")
    message = _banner(page, "第 1 行 C 列")
    assert "应为“开始”，实际是“开始时间”" in message, message
    assert page.locator(".tt-slot").count() == 1

    # The sheet's layout is right once column C is: the grid shows the imported row.
    fixed = sheet.replace("开始时间", "开始", 1)
    page.set_input_files(
        "#tt-import-file",
        files=[{"name": "课表.csv", "mimeType": "text/csv", "buffer": fixed.encode("utf-8-sig")}],
    )
    page.click("#tt-import")
    page.locator("td[data-weekday='1'][data-period='3'] .tt-slot").wait_for()
    assert page.locator(".tt-slot").count() == 1  # the sheet replaces the timetable

    admin.screenshot("admin-timetable-grid")
    # Only the refused requests (409, 422) are logged by the browser.
    assert [e for e in admin.errors if "status of 4" not in e] == []

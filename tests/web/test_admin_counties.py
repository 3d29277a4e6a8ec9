"""Counties and account scopes on the admin page, in real Chromium: a district admin adds a
county, a 教学点 in it and a county admin for it; the county admin signs in and his page
lists that county and its school only. Screenshots: test-artifacts/web/admin-counties-*.png."""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import PASSWORD, District, sign_in

pytestmark = pytest.mark.browser


def _row(page: Any, text: str) -> Any:
    row = page.locator("#admin-body tbody tr", has_text=text)
    row.wait_for()
    return row


def test_a_district_admin_sets_up_a_county_and_its_admin(
    open_page: Any, district: District
) -> None:
    admin = open_page(width=1366, height=900)
    sign_in(admin, "admin")
    page = admin.page
    page.goto("/admin/")
    page.click("#tab-counties")
    page.wait_for_selector("#f-code")
    page.fill("#f-name", "雷山县")
    page.fill("#f-code", "522634")
    page.click("#admin-body form button[type=submit]")
    assert "522634" in _row(page, "雷山县").inner_text()

    page.click("#tab-schools")
    page.wait_for_selector("#f-county")
    kinds = page.locator("#f-kind option").all_inner_texts()
    assert kinds == ["中心校", "教学点", "完全小学", "初级中学", "九年一贯制学校"]
    page.fill("#f-name", "雷山县大塘教学点")
    page.select_option("#f-kind", "teaching_point")
    page.select_option("#f-county", label="雷山县")
    page.click("#admin-body form button[type=submit]")
    assert "教学点" in _row(page, "雷山县大塘教学点").inner_text()
    assert "雷山县" in _row(page, "雷山县大塘教学点").inner_text()

    page.click("#tab-accounts")
    page.wait_for_selector("#f-scope")
    page.fill("#f-username", "leishan-admin")
    page.fill("#f-display_name", "雷山县教育局")
    page.select_option("#f-role", "admin")
    page.select_option("#f-scope", label="雷山县（全县）")
    page.fill("#f-password", PASSWORD)
    page.click("#admin-body form button[type=submit]")
    assert "雷山县" in _row(page, "leishan-admin").inner_text()
    admin.screenshot("admin-counties-accounts")
    assert admin.errors == []

    county = open_page(width=1366, height=900)
    sign_in(county, "leishan-admin")
    page = county.page
    page.goto("/admin/")
    page.wait_for_selector("#admin-body tbody tr")
    schools = page.locator("#admin-body tbody tr").all_inner_texts()
    assert len(schools) == 1 and "雷山县大塘教学点" in schools[0]
    page.click("#tab-counties")
    page.wait_for_selector("#admin-body table th:has-text('行政区划代码')")
    _row(page, "雷山县")
    assert page.locator("#admin-body tbody tr").count() == 1
    assert page.locator("#admin-body form").count() == 0  # counties are the district's
    county.screenshot("admin-counties-county-admin")
    assert county.errors == []

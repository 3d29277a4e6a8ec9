"""The 督导 dashboard in real Chromium under the Content-Security-Policy: ECharts draws every
chart (SVG, non-empty) from a seeded district, a district admin drills down county ->
school -> lesson, the exports download and open, a county admin sees only his county, and
the term report prints on A4. Screenshots: test-artifacts/web/reports-*.png and the PDF
test-artifacts/web/reports-term-report.pdf."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_harness import ARTIFACTS, PASSWORD, LiveServer, PageWatch
from openpyxl import load_workbook

from server.district_time import local_day
from tongke_bench.seed_district import seed

pytestmark = pytest.mark.browser

VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""
CHARTS = ("weekly", "attendance", "teachingPoints", "quality", "patrol", "evaluations", "exemplary")


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer) -> dict[str, Any]:
    """Two counties, 20 schools, 60 classrooms and a term of six weeks past, three to come."""
    settings = live_server.settings
    today = local_day(datetime.now(UTC), settings.zone)
    monday = today - timedelta(days=today.weekday())
    first, last = monday - timedelta(weeks=6), monday + timedelta(weeks=3, days=4)
    district = seed(settings, counties=2, schools=20, classrooms=60, first_day=first,
                    last_day=last, receivers_per_lesson=3, slots_per_lead=6, password=PASSWORD,
                    log=io.StringIO())  # fmt: skip
    # Playwright's sync API holds this thread's event loop: seed on a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        counts = pool.submit(asyncio.run, district).result()
    assert counts["lesson_attendance"] > 0
    return {"first": first, "last": last}


def _sign_in(watch: PageWatch, username: str) -> None:
    """Under the policy: no wait_for_function (its string predicates need eval)."""
    page = watch.page
    page.goto("/login/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url, timeout=10_000)


def _open(open_page: Any, username: str) -> PageWatch:
    watch = open_page(enforce_csp=True, width=1440, height=900)
    watch.page.context.add_init_script(VIOLATIONS)
    _sign_in(watch, username)
    return watch


def _wait_for_charts(watch: PageWatch) -> dict[str, int]:
    """Each chart's SVG shapes (paths, rects, texts) once ECharts has drawn it."""
    page = watch.page
    page.wait_for_selector("#chart-weekly svg path", state="attached", timeout=15_000)
    page.wait_for_selector("#chart-exemplary svg path", state="attached", timeout=15_000)
    return {
        name: page.locator(f"#chart-{name} svg path, #chart-{name} svg text").count()
        for name in CHARTS
    }


def _kpi(watch: PageWatch, name: str) -> int:
    return int(re.sub(r"\D", "", watch.page.inner_text(f"#kpi-{name} b")))


def test_a_county_admin_sees_the_charts_of_his_county_only(
    open_page: Any, seeded: dict[str, Any]
) -> None:
    watch = _open(open_page, "county-admin-1")
    watch.page.goto("/reports/")
    shapes = _wait_for_charts(watch)
    assert all(n > 3 for n in shapes.values()), shapes
    assert _kpi(watch, "scheduled") > 0 and _kpi(watch, "held") > 0
    # His county's schools only, no county picker, no way up to the district.
    assert watch.page.is_hidden("#county-field")
    crumbs = watch.page.inner_text("#crumbs")
    assert "凯里市" in crumbs and "全州" not in crumbs
    rows = watch.page.locator("#breakdown tbody tr")
    assert rows.count() == 10  # 20 schools over 2 counties
    assert all("凯里" in rows.nth(i).inner_text() for i in range(rows.count()))
    watch.screenshot("reports-dashboard-county")
    # The other county, asked for by URL, is as absent as one that does not exist.
    other = watch.page.evaluate(
        "fetch('/api/counties').then((r) => r.json())"
    )  # his own county only
    assert [c["name"] for c in other] == ["凯里市"]
    assert watch.page.evaluate("window.__csp") == []
    assert watch.errors == []


def test_a_district_admin_drills_down_county_school_lesson(
    open_page: Any, seeded: dict[str, Any]
) -> None:
    watch = _open(open_page, "district-admin")
    page = watch.page
    page.goto("/reports/")
    _wait_for_charts(watch)
    counties = page.locator("#breakdown tbody tr")
    assert counties.count() == 2
    district_held = _kpi(watch, "held")
    counties.filter(has_text="丹寨县").click()
    page.wait_for_url(re.compile(r"county_id="))
    page.wait_for_selector("#crumbs b:has-text('丹寨县')")
    page.wait_for_selector("#chart-weekly svg path", state="attached")
    assert 0 < _kpi(watch, "held") < district_held
    schools = page.locator("#breakdown tbody tr")
    assert schools.count() == 10
    central = schools.filter(has_text="中心校").first
    name = central.locator("td").first.inner_text()
    central.click()
    page.wait_for_url(re.compile(r"school_id="))
    page.wait_for_selector("#lessons tbody tr[data-lesson]")
    assert name in page.inner_text("#crumbs")
    watch.screenshot("reports-dashboard-school")
    # Back up one level with the browser's back button.
    page.go_back()
    page.wait_for_selector("#crumbs b:has-text('丹寨县')")
    page.go_forward()
    first = page.locator("#lessons tbody tr[data-lesson] a").first
    first.wait_for()
    lesson_id = page.locator("#lessons tbody tr[data-lesson]").first.get_attribute("data-lesson")
    first.click()
    page.wait_for_url(re.compile(r"/lesson-report/"))
    assert parse_qs(urlparse(page.url).query)["id"] == [lesson_id]
    page.wait_for_selector("#report-title")
    assert page.evaluate("window.__csp") == []
    assert watch.errors == []


def test_exports_download_and_match_the_dashboard(open_page: Any, seeded: dict[str, Any]) -> None:
    watch = _open(open_page, "district-admin")
    page = watch.page
    page.goto("/reports/")
    _wait_for_charts(watch)
    held = _kpi(watch, "held")
    with page.expect_download() as xlsx:
        page.click("#export-xlsx")
    book = load_workbook(io.BytesIO(Path(xlsx.value.path()).read_bytes()))
    assert xlsx.value.suggested_filename.endswith(".xlsx")
    assert book.sheetnames[0] == "总览"
    overview = {row[0]: row[1] for row in book["总览"].iter_rows(values_only=True) if row[0]}
    assert overview["开课节数"] == held
    with page.expect_download() as csv_file:
        page.click("#export-csv")
    text = Path(csv_file.value.path()).read_text(encoding="utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert "开课节数" in table[0]
    total = next(row for row in table if row[0] == "合计")
    assert int(total[table[0].index("开课节数")]) == held
    assert watch.errors == []


def test_the_term_report_prints_on_a4(open_page: Any, seeded: dict[str, Any]) -> None:
    watch = _open(open_page, "county-admin-2")
    page = watch.page
    page.goto("/reports/")
    _wait_for_charts(watch)
    page.click("#print-report")
    page.wait_for_url(re.compile(r"/reports/print/"))
    page.wait_for_selector("#print-weekly svg path", state="attached")
    page.wait_for_selector("#print-exemplary svg path", state="attached")
    assert "丹寨县" in page.inner_text("#print-title")
    assert page.locator("#print-breakdown tbody tr").count() == 10
    page.emulate_media(media="print")
    assert page.is_hidden(".topbar") and page.is_hidden("#print-now")
    watch.screenshot("reports-term-report-print")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = page.pdf(path=str(ARTIFACTS / "reports-term-report.pdf"), prefer_css_page_size=True)
    # A4 portrait in points (595 x 842), as @page asks.
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box is not None
    assert (round(float(box[1])), round(float(box[2]))) == (595, 842)
    assert page.evaluate("window.__csp") == []
    assert watch.errors == []

"""Every page loads in real Chromium, in zh-CN and en, with no console errors; sign-in, join
links and the device check work against the real service. Screenshots: test-artifacts/web/."""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import District, LiveServer, sign_in

pytestmark = pytest.mark.browser

# Pages that need nobody signed in to render their first screen.
PUBLIC_PAGES = {
    "home": "/",
    "login": "/login/",
    "check": "/check/",
    "join-without-code": "/join/",
    "not-found": "/no-such-page",
}
EXPECTED_HTTP_ERRORS = {"not-found"}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("name", sorted(PUBLIC_PAGES))
def test_public_page_loads_without_console_errors(open_page: Any, name: str, lang: str) -> None:
    watch = open_page(lang)
    watch.page.goto(PUBLIC_PAGES[name])
    watch.page.wait_for_selector(".topbar")
    watch.page.wait_for_load_state("networkidle")
    watch.screenshot(f"{name}-{lang}")
    errors = watch.errors
    if name in EXPECTED_HTTP_ERRORS:
        errors = [e for e in errors if "404" not in e]
    assert errors == []
    html_lang = watch.page.evaluate("document.documentElement.lang")
    assert html_lang == lang
    # No untranslated keys leak onto the page.
    body = watch.page.inner_text("body")
    assert "check." not in body and "home." not in body and "err." not in body


def test_page_text_follows_the_language_switch(open_page: Any) -> None:
    watch = open_page("zh-CN")
    watch.page.goto("/login/")
    assert "登录同课" in watch.page.inner_text("h1")
    watch.page.click("#lang-switch")
    watch.page.wait_for_function("document.documentElement.lang === 'en'")
    assert "Sign in to Tongke" in watch.page.inner_text("h1")


def test_wrong_password_shows_a_plain_error(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    watch = open_page()
    watch.page.goto("/login/")
    watch.page.fill("#username", "teacher")
    watch.page.fill("#password", "not the password")
    watch.page.click("#login-form button[type=submit]")
    watch.page.wait_for_selector("#page-banner:not(.hidden)")
    assert "用户名或密码不正确" in watch.page.inner_text("#page-banner")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_teacher_signs_in_and_sees_todays_lesson(
    open_page: Any, district: District, lang: str
) -> None:
    watch = open_page(lang)
    sign_in(watch, "teacher")
    card = watch.page.wait_for_selector(f"#today .card[data-lesson='{district.lesson['id']}']")
    assert "分数的初步认识" in card.inner_text()
    watch.screenshot(f"home-teacher-{lang}")
    assert watch.errors == []


def test_admin_page_lists_schools_and_draws_join_link_qr_codes(
    open_page: Any, district: District
) -> None:
    watch = open_page()
    sign_in(watch, "admin")
    watch.page.goto("/admin/")
    watch.page.wait_for_selector("text=城关中心校")
    watch.screenshot("admin-schools-zh-CN")
    watch.page.click("#tab-links")
    watch.page.select_option("#links-lesson", district.lesson["id"])
    watch.page.wait_for_selector(".qr svg")
    watch.screenshot("admin-links-zh-CN")
    assert watch.page.locator(".qr svg").count() >= 3
    assert watch.errors == []


def test_revoked_join_link_says_so_in_plain_words(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    admin = live_server.http("admin")
    link = admin.post(
        f"/api/lessons/{district.lesson['id']}/links",
        json={"classroom_id": district.receivers[0]["id"]},
    ).json()
    admin.post(f"/api/lessons/{district.lesson['id']}/links/{link['id']}/revoke")
    admin.close()
    watch = open_page()
    watch.page.goto(f"/join/{link['code']}")
    watch.page.wait_for_selector("#page-banner:not(.hidden)")
    assert "已被撤销" in watch.page.inner_text("#page-banner")
    watch.screenshot("join-revoked-zh-CN")


def test_device_check_reports_camera_microphone_and_network(open_page: Any) -> None:
    watch = open_page()
    page = watch.page
    page.goto("/check/")
    page.click("#check-start")
    page.wait_for_function(
        "document.querySelector('#check-verdict').dataset.result !== 'pending'", timeout=30_000
    )
    assert page.get_attribute("#check-camera", "data-result") == "ok"
    assert page.get_attribute("#check-mic", "data-result") == "ok"
    assert page.get_attribute("#check-network", "data-result") == "ok"
    assert page.evaluate("document.querySelector('#camera-preview video').videoWidth") > 0
    assert page.get_attribute("#check-verdict", "data-result") in ("good", "fair")
    page.click("#play-tone")
    page.click("#heard-yes")
    assert page.get_attribute("#check-speaker", "data-result") == "ok"
    watch.screenshot("check-done-zh-CN")
    assert watch.errors == []

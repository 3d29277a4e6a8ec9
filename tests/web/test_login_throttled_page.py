"""The sign-in page under throttling (issue 17, finding 12): after too many wrong passwords
it says in Chinese in how many minutes, and after what time, to try again. Real Chromium
against the real service."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from browser_harness import LiveServer

pytestmark = pytest.mark.browser


def test_the_sign_in_page_says_when_to_try_again(open_page: Any, live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.api_url, verify=live_server.verify) as client:
        for _ in range(10):  # login_max_failures_per_account
            answer = client.post(
                "/api/auth/login", json={"username": "guessed", "password": "wrong"}
            )
            assert answer.status_code == 401
    watch = open_page(enforce_csp=True)
    page = watch.page
    page.goto("/login/")
    page.fill("#username", "guessed")
    page.fill("#password", "wrong again")
    page.click("#login-form button[type=submit]")
    banner = page.locator("#page-banner")
    banner.wait_for(state="visible", timeout=10_000)
    text = banner.inner_text()
    assert "密码错误次数过多" in text and "15 分钟后" in text, text
    # Chromium logs the refused request itself; nothing else may go wrong.
    assert [e for e in watch.errors if "status of 429" not in e] == []

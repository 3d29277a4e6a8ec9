"""Sign-in's `next` stays on this origin, and pages work under the security headers
(issue 17, findings 1 and 12): Content-Security-Policy without inline script,
frame-ancestors 'none', nosniff, Referrer-Policy. Real Chromium against the real service."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from browser_harness import PASSWORD, District, LiveServer, PageWatch

pytestmark = pytest.mark.browser

# Each of these once left the site after sign-in, or would with a prefix check only.
OFFSITE_NEXT = [
    "/\\evil.example/x",
    "/\t/evil.example",
    "//evil.example/x",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\\/evil.example",
]

# Collects CSP violations the page sees (a console error too, but this names the directive).
VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def _sign_in(watch: PageWatch, username: str, next_value: str | None = None) -> str:
    """Signs in under the policy (no wait_for_function: its string predicates need eval)."""
    page = watch.page
    page.goto("/login/" if next_value is None else f"/login/?next={quote(next_value, safe='')}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url, timeout=10_000)
    page.wait_for_load_state("load")
    return str(page.url)


@pytest.mark.parametrize("next_value", OFFSITE_NEXT)
def test_sign_in_never_redirects_off_site(
    open_page: Any, live_server: LiveServer, district: District, next_value: str
) -> None:
    watch = open_page(enforce_csp=True)
    landed = _sign_in(watch, "teacher", next_value)
    assert landed.startswith(live_server.url + "/"), landed
    assert "evil.example" not in landed


def test_sign_in_goes_back_to_a_same_origin_path(
    open_page: Any, live_server: LiveServer, district: District
) -> None:
    watch = open_page(enforce_csp=True)
    landed = _sign_in(watch, "teacher", "/library/?q=分数#top")
    assert landed.startswith(live_server.url + "/library/?q="), landed


def test_pages_and_api_carry_the_security_headers(live_server: LiveServer) -> None:
    for path in ("/", "/admin/", "/login/", "/api/auth/me", "/js/api.js", "/no-such-page"):
        response = httpx.get(live_server.url + path, verify=False)
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0], path
        assert response.headers.get("x-content-type-options") == "nosniff", path
        assert response.headers.get("referrer-policy") == "same-origin", path


def test_pages_work_under_the_policy(open_page: Any, district: District) -> None:
    """Signed in as admin, every page renders with no CSP violation and no console error."""
    watch = open_page(enforce_csp=True)
    watch.page.context.add_init_script(VIOLATIONS)
    _sign_in(watch, "admin")
    for path, ready in (
        ("/", ".topbar"),
        ("/admin/", ".topbar"),
        ("/library/", ".topbar"),
        ("/check/", ".topbar"),
        ("/join/", ".topbar"),
        ("/ca/", "body"),
    ):
        watch.page.goto(path)
        watch.page.wait_for_selector(ready)
        watch.page.wait_for_load_state("networkidle")
        assert watch.page.evaluate("window.__csp") == [], path
    assert watch.errors == []


def test_the_admin_page_cannot_be_framed(open_page: Any, live_server: LiveServer) -> None:
    watch = open_page(enforce_csp=True)
    watch.page.goto("/login/")
    framed = watch.page.evaluate(
        """(url) => new Promise((done) => {
            const frame = document.createElement("iframe");
            frame.src = url;
            frame.onload = () => {
              let reachable = false;
              try {
                const doc = frame.contentDocument;
                reachable = !!doc && doc.URL !== "about:blank" && !!doc.querySelector("script");
              } catch { reachable = false; }
              done(reachable);
            };
            document.body.append(frame);
          })""",
        live_server.url + "/admin/",
    )
    assert framed is False

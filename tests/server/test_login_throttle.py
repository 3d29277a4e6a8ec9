"""Sign-in throttling (issue 17, finding 12): wrong passwords counted per account and per
address over a sliding window; past the limit 429 login_throttled with Retry-After.
SQLite and PostgreSQL; the window's arithmetic on a hand-driven clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_support import make_settings
from fastapi.testclient import TestClient

from server.accounts_cli import create_account
from server.app import create_app
from server.login_throttle import LoginThrottle

PROXY = "192.0.2.1"
PASSWORD = "correct horse battery"
USERS = ("wang", "zhang", "li")


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """An app behind a trusted proxy, so each request names its address (X-Forwarded-For)."""
    settings = make_settings(
        tmp_path,
        database_url,
        trusted_proxies=[PROXY],
        login_max_failures_per_account=10,
        login_max_failures_per_address=40,
    )
    for username in USERS:
        asyncio.run(create_account(settings, username, PASSWORD, username))
    with TestClient(create_app(settings), client=(PROXY, 50000)) as test_client:
        yield test_client


def sign_in(client: TestClient, username: str, password: str, address: str) -> Any:
    return client.post(
        "/api/auth/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": f"203.0.113.50, {address}"},
    )


def test_thirty_wrong_passwords_in_a_row_are_throttled(client: TestClient) -> None:
    codes = [sign_in(client, "wang", f"guess {i}", "198.51.100.7").status_code for i in range(30)]
    assert codes == [401] * 10 + [429] * 20
    refused = sign_in(client, "wang", PASSWORD, "198.51.100.7")
    assert refused.status_code == 429  # the right password too: the guesser cannot tell
    assert refused.json()["error"]["code"] == "login_throttled"
    wait = int(refused.headers["Retry-After"])
    assert 890 <= wait <= 900  # the first failure leaves the 900 s window
    assert f"{wait} s" in refused.json()["error"]["message"]
    # The account, from anywhere.
    assert sign_in(client, "wang", PASSWORD, "198.51.100.99").status_code == 429
    # Another account, from another address or even the same one (10 of its 40 so far).
    assert sign_in(client, "zhang", PASSWORD, "198.51.100.99").status_code == 200
    assert sign_in(client, "li", PASSWORD, "198.51.100.7").status_code == 200


def test_one_address_trying_many_accounts_is_throttled(client: TestClient) -> None:
    guesser = "198.51.100.8"
    for i in range(40):
        answer = sign_in(client, f"user{i}", "guess", guesser)
        assert answer.status_code == 401, i
    refused = sign_in(client, "zhang", PASSWORD, guesser)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert sign_in(client, "zhang", PASSWORD, "198.51.100.9").status_code == 200


def test_a_correct_password_resets_the_accounts_count(client: TestClient) -> None:
    for _ in range(9):
        assert sign_in(client, "li", "typo", "198.51.100.10").status_code == 401
    assert sign_in(client, "li", PASSWORD, "198.51.100.10").status_code == 200
    for _ in range(9):
        assert sign_in(client, "li", "typo", "198.51.100.10").status_code == 401
    assert sign_in(client, "li", PASSWORD, "198.51.100.10").status_code == 200


def test_the_window_slides() -> None:
    now = [0.0]
    throttle = LoginThrottle(window_s=100, per_account=3, per_address=1000, clock=lambda: now[0])
    for at in (0.0, 10.0, 20.0):
        now[0] = at
        assert throttle.retry_after_s("wang", "a") == 0
        throttle.failed("wang", "a")
    now[0] = 30.0
    assert throttle.retry_after_s("wang", "a") == 70  # until the failure at 0 is 100 s old
    now[0] = 100.5
    assert throttle.retry_after_s("wang", "a") == 0  # two left in the window
    throttle.failed("wang", "a")
    assert throttle.retry_after_s("wang", "b") == 10  # now the one at 10 must leave
    throttle.succeeded("wang")
    assert throttle.retry_after_s("wang", "a") == 0

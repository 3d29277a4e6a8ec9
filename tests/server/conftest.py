"""Fixtures for the data layer and the HTTP API: apps on SQLite or a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from app_support import app_state, make_settings
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from shared_support import fresh_postgres_database

from server.accounts_cli import create_account
from server.app import create_app
from server.settings import Settings
from server.state import AppState

T = TypeVar("T")

PASSWORD = "correct horse battery"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", autouse=True)
def _light_argon2() -> Iterator[None]:
    """Real Argon2id with small cost parameters: the production cost (about 0.1-0.3 s a hash
    on two cores) would dominate these tests. test_passwords.py checks the production cost."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "server.passwords._hasher",
            PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        yield


@contextmanager
def database_url_for(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{(data_dir / 'tongke.db').resolve()}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend."""
    with database_url_for(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def run_in_app(client: TestClient, fn: Callable[[AppState], Awaitable[T]]) -> T:
    """Run a coroutine on the app's own event loop (the database engine lives there)."""
    state = app_state(client)

    async def call() -> T:
        return await fn(state)

    return client.portal.call(call)  # type: ignore[union-attr]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, username: str, password: str) -> str:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    # Requests choose their identity by header; a cookie left in the jar would leak into them.
    client.cookies.clear()
    return str(response.json()["token"])


@dataclass
class District:
    """A running app with one account per role, signed in, and helpers to build fixtures."""

    client: TestClient
    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    password: str = PASSWORD

    def run(self, fn: Callable[[AppState], Awaitable[T]]) -> T:
        """Run a coroutine with the app's state on the app's event loop."""
        return run_in_app(self.client, fn)

    @property
    def state(self) -> AppState:
        return app_state(self.client)

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return bearer(token)

    def headers(self, role: str) -> dict[str, str]:
        return bearer(self.tokens[role]) if role in self.tokens else {}

    def admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers("admin"))
        assert response.status_code in (200, 201), response.text
        return response.json()  # type: ignore[no-any-return]

    def school(self) -> str:
        body = {"name": f"school {uuid.uuid4().hex[:6]}", "kind": "central", "district": "示范县"}
        return str(self.admin_post("/api/schools", body)["id"])

    def classroom(self, school_id: str | None = None, kind: str = "any") -> str:
        body = {
            "school_id": school_id or self.school(),
            "name": f"room {uuid.uuid4().hex[:6]}",
            "kind": kind,
        }
        return str(self.admin_post("/api/classrooms", body)["id"])

    def lesson_body(self, receivers: int = 2) -> dict[str, Any]:
        school_id = self.school()
        start = datetime.now(UTC) + timedelta(hours=1)
        return {
            "title": "口算乘法",
            "teacher_id": self.ids["teacher"],
            "lead_classroom_id": self.classroom(school_id, "lead"),
            "receiver_classroom_ids": [
                self.classroom(school_id, "receiving") for _ in range(receivers)
            ],
            "scheduled_start": start.isoformat(),
            "scheduled_end": (start + timedelta(minutes=45)).isoformat(),
            "stage": "小学",
            "subject": "数学",
            "grade": "三年级",
            "textbook_version": "人教版",
            "volume": "上册",
            "unit": "第六单元 第1课时",
        }

    def lesson(self, receivers: int = 2) -> dict[str, Any]:
        """A scheduled lesson taught by `teacher`."""
        return self.admin_post("/api/lessons", self.lesson_body(receivers))

    def login(self, role: str) -> str:
        """A fresh session token for one of the district's roles."""
        return login(self.client, USERNAMES[role], PASSWORD)

    def link(self, lesson: dict[str, Any], classroom_id: str | None = None) -> dict[str, Any]:
        body = {"classroom_id": classroom_id or lesson["lead"]["id"]}
        return self.admin_post(f"/api/lessons/{lesson['id']}/links", body)


ROLES = ("anonymous", "admin", "teacher", "other_teacher", "inspector")
USERNAMES = {
    "admin": "admin",
    "teacher": "teacher",
    "other_teacher": "other-teacher",
    "inspector": "inspector",
}


@contextmanager
def district_app(settings: Settings) -> Iterator[District]:
    """Start an app with an admin, two teachers and an inspector, each signed in."""
    asyncio.run(create_account(settings, "admin", PASSWORD, "管理员"))
    with TestClient(create_app(settings)) as test_client:
        district = District(test_client)
        district.tokens["admin"] = login(test_client, "admin", PASSWORD)
        for role, account_role, name in (
            ("teacher", "teacher", "王老师"),
            ("other_teacher", "teacher", "张老师"),
            ("inspector", "inspector", "李巡课员"),
        ):
            account = district.admin_post(
                "/api/accounts",
                {
                    "username": USERNAMES[role],
                    "display_name": name,
                    "role": account_role,
                    "password": PASSWORD,
                },
            )
            district.ids[role] = account["id"]
            district.tokens[role] = district.login(role)
        yield district


@pytest.fixture(scope="module", params=BACKENDS)
def district(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[District]:
    """One district app per module and backend; tests build their own rows in it."""
    data_dir = tmp_path_factory.mktemp("district")
    with database_url_for(request.param, data_dir) as url:
        with district_app(make_settings(data_dir, url)) as value:
            yield value


@pytest.fixture
def sqlite_district(tmp_path: Path) -> Iterator[District]:
    """A district app of its own on SQLite, for tests that change global things."""
    with district_app(make_settings(tmp_path)) as value:
        yield value

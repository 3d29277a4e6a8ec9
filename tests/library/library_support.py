"""Helpers for the library tests: a district app with one account per role, catalogue rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi.testclient import TestClient
from shared_support import fresh_postgres_database

from server.accounts_cli import create_account
from server.app import create_app
from server.db.models import LibraryRecording
from server.settings import Settings
from server.state import AppState

T = TypeVar("T")

PASSWORD = "correct horse battery"


def settings_for(data_dir: Path, database_url: str = "") -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        seed_demo=False,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        media_addresses=["127.0.0.1"],
    )


@contextmanager
def database_url(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield ""
        return
    with fresh_postgres_database("tongke_library") as url:
        yield url


@dataclass
class Library:
    """A running app with an admin, two teachers and an inspector, each signed in."""

    client: TestClient
    settings: Settings
    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> AppState:
        return self.client.app_state["app"]  # type: ignore[no-any-return]

    def run(self, fn: Callable[[AppState], Awaitable[T]]) -> T:
        state = self.state

        async def call() -> T:
            return await fn(state)

        return self.client.portal.call(call)  # type: ignore[union-attr]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}

    def get(self, path: str, role: str, **kwargs: Any) -> Any:
        return self.client.get(
            path, headers={**self.headers(role), **kwargs.pop("headers", {})}, **kwargs
        )

    def post(self, path: str, role: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, json=body, headers=self.headers(role))

    def add_recording(self, **values: Any) -> str:
        """A catalogue row (and, with `files`, files in its folder) made directly."""
        files: dict[str, bytes] = values.pop("files", {})
        directory = values.pop("directory", f"lesson-x/{uuid.uuid4().hex[:8]}")
        folder = self.settings.effective_recording_root / directory
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        defaults: dict[str, Any] = {
            "directory": directory,
            "state": "finished",
            "title": "口算乘法",
            "started_at": datetime(2026, 9, 1, 1, 0, tzinfo=UTC),
            "duration_s": 2400.0,
            "rendition_state": "done",
            "tracks": [],
        }
        defaults.update(values)

        async def insert(state: AppState) -> str:
            async with state.db.sessions.begin() as session:
                row = LibraryRecording(**defaults)
                session.add(row)
            return row.id

        return self.run(insert)

    def clear(self) -> None:
        async def delete(state: AppState) -> None:
            from sqlalchemy import delete as sql_delete

            async with state.db.sessions.begin() as session:
                await session.execute(sql_delete(LibraryRecording))

        self.run(delete)


def _login(client: TestClient, username: str) -> str:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return str(response.json()["token"])


@contextmanager
def library_app(settings: Settings) -> Iterator[Library]:
    asyncio.run(create_account(settings, "admin", PASSWORD, "管理员"))
    with TestClient(create_app(settings)) as client:
        library = Library(client, settings)
        library.tokens["admin"] = _login(client, "admin")
        for key, role, name in (
            ("teacher", "teacher", "王老师"),
            ("other_teacher", "teacher", "张老师"),
            ("inspector", "inspector", "李巡课员"),
            ("other_inspector", "inspector", "赵巡课员"),
        ):
            response = client.post(
                "/api/accounts",
                json={
                    "username": key.replace("_", "-"),
                    "display_name": name,
                    "role": role,
                    "password": PASSWORD,
                },
                headers=library.headers("admin"),
            )
            assert response.status_code == 201, response.text
            library.ids[key] = response.json()["id"]
            library.tokens[key] = _login(client, key.replace("_", "-"))
        yield library

"""The demo district: seeded once into an empty database, with working links for every role."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.db.models import Account, Classroom, JoinLink, Lesson, School
from server.settings import Settings
from server.state import AppState

URL = re.compile(r"https?://\S+")


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        seed_demo=True,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        public_url="https://tongke.example.cn",
    )


def _counts(client: TestClient) -> dict[str, int]:
    state: AppState = client.app_state["app"]

    async def count() -> dict[str, int]:
        async with state.db.sessions.begin() as session:
            return {
                model.__tablename__: int(
                    await session.scalar(select(func.count()).select_from(model)) or 0
                )
                for model in (School, Classroom, Account, Lesson, JoinLink)
            }

    return client.portal.call(count)  # type: ignore[union-attr]


def test_an_empty_database_gets_the_demo_district_and_prints_its_links(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        printed = capsys.readouterr().out
        assert _counts(client) == {
            "schools": 2,
            "classrooms": 4,
            "accounts": 3,
            "lessons": 1,
            "join_links": 5,
        }
        urls = URL.findall(printed)
        join_urls = [u for u in urls if "/join/" in u]
        patrol_urls = [u for u in urls if "/patrol?link=" in u]
        assert len(join_urls) == 4 and len(patrol_urls) == 1
        assert all(u.startswith("https://tongke.example.cn/") for u in urls)
        roles = []
        for url in join_urls + patrol_urls:
            code = url.rsplit("/", 1)[-1].split("=", 1)[-1]
            response = client.post(f"/api/join/{code}")
            assert response.status_code == 200, response.text
            roles.append(response.json()["role"])
        assert roles == ["lead", "receiver", "receiver", "receiver", "patrol"]
        # Each printed password signs its account in; none is stored as printed.
        accounts = re.findall(r"^\s+(admin|teacher|inspector)\s+(\S+)\s+(\S+)", printed, re.M)
        assert [a[0] for a in accounts] == ["admin", "teacher", "inspector"]
        for role, username, password in accounts:
            response = client.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
            assert response.json()["account"]["role"] == role
        client.cookies.clear()
        lessons = client.get(
            "/api/lessons", headers={"Authorization": f"Bearer {response.json()['token']}"}
        ).json()
        (lesson,) = lessons
        assert (lesson["subject"], lesson["grade"], lesson["textbook_version"]) == (
            "数学",
            "三年级",
            "人教版",
        )
        assert len(lesson["receivers"]) == 3
    assert not any(password in (tmp_path / "tongke.db").read_bytes().decode("latin-1")
                   for _, _, password in accounts)  # fmt: skip


def test_demo_passwords_differ_from_one_district_to_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for name in ("a", "b"):
        with TestClient(create_app(_settings(tmp_path / name))):
            outputs.append(capsys.readouterr().out)
    first, second = (set(re.findall(r"demo-admin\s+(\S+)", out)) for out in outputs)
    assert first and first != second


def test_a_second_start_seeds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        first = _counts(client)
    capsys.readouterr()
    with TestClient(create_app(_settings(tmp_path))) as client:
        assert _counts(client) == first
    assert "demo district" not in capsys.readouterr().out


def test_a_database_with_an_admin_gets_no_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    assert main(["admin", "create", "--data-dir", str(tmp_path), "--username", "root",
                 "--password", "long enough"]) == 0  # fmt: skip
    with TestClient(create_app(_settings(tmp_path))) as client:
        counts = _counts(client)
    assert counts["accounts"] == 1 and counts["schools"] == 0

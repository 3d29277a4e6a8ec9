"""/readyz reflects what requests need (issue 17, findings 10 and the readiness list): a
database write, free space in the data folder and the recording root, a writable recording
root, the bus; /metrics exports the free space; the recording status says when it is low.

The full disk is real: a tmpfs data folder filled to the last byte (tests/fs_support.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app_support import app_state, make_settings
from fastapi.testclient import TestClient
from fs_support import fill, tmpfs
from sqlalchemy import select

from server.accounts_cli import create_account
from server.app import create_app
from server.db.models import Account, Classroom, Lesson, School, utcnow
from server.state import AppState

PASSWORD = "correct horse battery"

CHECKS = {"database", "disk_data", "disk_recordings", "recording_root", "bus"}


def test_a_healthy_node_is_ready_and_says_what_it_checked(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, min_free_disk_mb=1)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == dict.fromkeys(CHECKS, "ok")
        metrics = client.get("/metrics").text
    free = [line for line in metrics.splitlines() if line.startswith("tongke_disk_free_bytes")]
    assert {line.split("{")[1].split("}")[0] for line in free} == {
        'folder="data"',
        'folder="recordings"',
    }
    assert all(float(line.rsplit(" ", 1)[1]) > 0 for line in free)
    assert "tongke_disk_min_free_bytes 1.048576e+06" in metrics


def test_a_restart_onto_a_full_data_folder_is_not_ready_and_says_why(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", "16m") as data:
        settings = make_settings(data, min_free_disk_mb=1)
        asyncio.run(create_account(settings, "admin", PASSWORD, "管理员"))
        fill(data)
        with TestClient(create_app(settings)) as client:
            ready = client.get("/readyz")
            login = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"].startswith("error: ") and "full" in checks["database"], checks
    assert checks["disk_data"].startswith(f"error: {data} has 0 MiB free, below min_free_disk")
    assert checks["disk_recordings"].startswith("error: ")  # the recordings are in there too
    assert checks["bus"] == "ok"
    # What /readyz says is what a request meets: sign-in cannot store its session either.
    assert login.status_code == 503, login.text
    assert login.json()["error"]["code"] == "database_unavailable"


async def one_lesson(state: AppState) -> str:
    """A lesson to ask about (the status route answers lessons in the caller's scope only)."""
    async with state.db.sessions.begin() as session:
        lesson = await session.scalar(select(Lesson.id).limit(1))
        if lesson is not None:
            return lesson
        school = School(name="城关小学", kind="central")
        teacher = Account(username="t", display_name="李老师", role="teacher", password_hash="x")
        session.add_all([school, teacher])
        await session.flush()
        room = Classroom(school_id=school.id, name="主讲")
        session.add(room)
        await session.flush()
        row = Lesson(
            title="圆的面积", teacher_id=teacher.id, lead_classroom_id=room.id,
            scheduled_start=utcnow(), scheduled_end=utcnow(),
        )  # fmt: skip
        session.add(row)
    return row.id


def test_the_recording_status_warns_when_space_is_low(tmp_path: Path) -> None:
    asyncio.run(create_account(make_settings(tmp_path), "admin", PASSWORD, "管理员"))
    for threshold, low in ((1, False), (10**9, True)):  # 10**9 MiB: more than any disk here
        settings = make_settings(tmp_path, min_free_disk_mb=threshold)
        with TestClient(create_app(settings)) as client:
            token = client.post(
                "/api/auth/login", json={"username": "admin", "password": PASSWORD}
            ).json()["token"]
            client.cookies.clear()
            lesson_id = client.portal.call(one_lesson, app_state(client))  # type: ignore[union-attr]
            status = client.get(
                f"/api/library/recording-status/{lesson_id}",
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            ready = client.get("/readyz").json()["checks"]["disk_recordings"]
        assert status["space_low"] is low and status["free_bytes"] > 0, status
        assert (ready == "ok") is not low

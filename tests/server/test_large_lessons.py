"""Large lessons: the receiving-classroom limit is the setting max_receiving_classrooms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app_support import make_settings
from conftest import district_app

from server.settings import Settings

if TYPE_CHECKING:
    from conftest import District


def test_the_default_limit_takes_hundreds_of_receiving_classrooms() -> None:
    assert Settings().max_receiving_classrooms >= 1000


def test_a_lesson_of_a_hundred_receiving_classrooms_is_created(district: District) -> None:
    body = district.lesson_body(receivers=100)
    lesson = district.admin_post("/api/lessons", body)
    assert [r["id"] for r in lesson["receivers"]] == body["receiver_classroom_ids"]


def test_more_receivers_than_the_setting_is_roster_too_large(tmp_path: Path) -> None:
    with district_app(make_settings(tmp_path, max_receiving_classrooms=3)) as district:
        admin = district.headers("admin")
        body = district.lesson_body(receivers=4)
        response = district.client.post("/api/lessons", json=body, headers=admin)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "roster_too_large"
        assert "at most 3" in error["message"]
        body["receiver_classroom_ids"] = body["receiver_classroom_ids"][:3]
        lesson = district.admin_post("/api/lessons", body)
        patch = {
            "receiver_classroom_ids": [
                *body["receiver_classroom_ids"],
                district.classroom(district.school(), "receiving"),
            ]
        }
        response = district.client.patch(f"/api/lessons/{lesson['id']}", json=patch, headers=admin)
        assert response.json()["error"]["code"] == "roster_too_large"
        # Nothing was lost: the lesson keeps its three classrooms.
        again = district.client.get(f"/api/lessons/{lesson['id']}", headers=admin).json()
        assert len(again["receivers"]) == 3

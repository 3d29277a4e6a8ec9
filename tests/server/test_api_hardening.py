"""Bad text never reaches the database, on SQLite and PostgreSQL alike (issue 17, finding 2).

Lesson metadata longer than its column answered 503 on PostgreSQL only (SQLite ignores
VARCHAR lengths); a NUL in a title answered 503 and in a note internal_error. Every test
runs on both backends (the `district` fixture).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel
from sqlalchemy import String

from server.api import schemas
from server.db import lengths
from server.db.models import Account, Classroom, Lesson, LibraryRecording, School

if TYPE_CHECKING:
    from conftest import District

METADATA = {
    "stage": lengths.STAGE,
    "subject": lengths.SUBJECT,
    "grade": lengths.GRADE,
    "textbook_version": lengths.TEXTBOOK_VERSION,
    "volume": lengths.VOLUME,
    "unit": lengths.UNIT,
}


def _error(response: Any) -> dict[str, str]:
    return dict(response.json()["error"])


@pytest.mark.parametrize("field", sorted(METADATA))
def test_metadata_one_past_its_column_is_a_422_naming_the_field(
    district: District, field: str
) -> None:
    limit = METADATA[field]
    headers = district.headers("admin")
    body = district.lesson_body() | {field: "课" * (limit + 1)}
    response = district.client.post("/api/lessons", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert _error(response)["code"] == "invalid_request"
    assert _error(response)["message"].startswith(field), response.text
    # At the limit it is stored as sent, on both backends.
    body = district.lesson_body() | {field: "课" * limit}
    created = district.client.post("/api/lessons", json=body, headers=headers)
    assert created.status_code == 201, created.text
    patched = district.client.patch(
        f"/api/lessons/{created.json()['id']}", json={field: "x" * (limit + 1)}, headers=headers
    )
    assert patched.status_code == 422 and _error(patched)["message"].startswith(field)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/lessons", {"title": "分数\u0000的认识"}),
        ("/api/lessons", {"unit": "第一单元\u0000"}),
    ],
)
def test_nul_in_a_body_is_a_422_naming_the_field(
    district: District, path: str, body: dict[str, str]
) -> None:
    full = district.lesson_body() | body
    response = district.client.post(path, json=full, headers=district.headers("admin"))
    assert response.status_code == 422, response.text
    error = _error(response)
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(next(iter(body))), error
    assert "U+0000" in error["message"]


def test_nul_in_a_school_name_a_query_and_a_path_is_refused(district: District) -> None:
    headers = district.headers("admin")
    school = district.client.post(
        "/api/schools", json={"name": "城关\u0000小学", "kind": "central"}, headers=headers
    )
    assert school.status_code == 422 and _error(school)["message"].startswith("name")
    search = district.client.get("/api/library?q=%00", headers=headers)
    assert search.status_code == 422 and _error(search)["message"].startswith("query.q")
    lesson = district.client.get("/api/lessons/ab%00cd", headers=headers)
    assert lesson.status_code == 422 and _error(lesson)["message"].startswith("path")


def _max_length(model: type[BaseModel], name: str) -> int | None:
    for meta in model.model_fields[name].metadata:
        if getattr(meta, "max_length", None) is not None:
            return int(meta.max_length)
    annotation = model.model_fields[name].annotation
    for arg in getattr(annotation, "__args__", ()):
        for meta in getattr(arg, "__metadata__", ()):
            if getattr(meta, "max_length", None) is not None:
                return int(meta.max_length)
    return None


def _is_enum(annotation: Any) -> bool:
    kinds = (annotation, *getattr(annotation, "__args__", ()))
    return any(isinstance(kind, type) and issubclass(kind, Enum) for kind in kinds)


@pytest.mark.parametrize(
    ("body", "table"),
    [
        (schemas.LessonIn, Lesson),
        (schemas.LessonPatch, Lesson),
        (schemas.LessonIn, LibraryRecording),  # the library row copies the lesson's metadata
        (schemas.SchoolIn, School),
        (schemas.SchoolPatch, School),
        (schemas.ClassroomIn, Classroom),
        (schemas.ClassroomPatch, Classroom),
        (schemas.AccountIn, Account),
        (schemas.AccountPatch, Account),
    ],
)
def test_every_limited_body_field_fits_its_column(body: type[BaseModel], table: Any) -> None:
    columns = table.__table__.columns
    checked = 0
    for name in body.model_fields:
        if name not in columns or not isinstance(columns[name].type, String):
            continue
        width = columns[name].type.length
        if width is None or _is_enum(body.model_fields[name].annotation):
            continue
        allowed = _max_length(body, name)
        assert allowed is not None and allowed <= width, f"{body.__name__}.{name} > {width}"
        checked += 1
    assert checked > 0

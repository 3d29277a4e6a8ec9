"""The timetable as XLSX and CSV with Chinese headers: round trip, and bad sheets refused
naming the row and column."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import pytest
from openpyxl import Workbook, load_workbook
from timetable_support import error, slot_body, term_lessons

from server.timetable.sheet import HEADERS

if TYPE_CHECKING:
    from conftest import District


@pytest.fixture
def setup(district: District) -> dict[str, Any]:
    admin = district.headers("admin")
    schools = district.client.get("/api/schools", headers=admin).json()
    school = next((s for s in schools if s["name"] == "城关小学"), None) or district.admin_post(
        "/api/schools", {"name": "城关小学", "kind": "central"}
    )
    rooms = {}
    for name, kind in (("301", "lead"), ("东山教学点", "receiving"), ("西岭教学点", "receiving")):
        existing = district.client.get(
            "/api/classrooms", params={"school_id": school["id"]}, headers=admin
        ).json()
        found = [c for c in existing if c["name"] == name]
        rooms[name] = found[0]["id"] if found else district.admin_post(
            "/api/classrooms", {"school_id": school["id"], "name": name, "kind": kind}
        )["id"]  # fmt: skip
    known = {t["name"]: t["id"] for t in district.client.get("/api/terms", headers=admin).json()}
    terms = {}
    for name, first, last in (("2040秋", "2040-09-03", "2040-09-28"),
                              ("2041春", "2041-03-04", "2041-03-29")):  # fmt: skip
        body = {"name": name, "first_day": first, "last_day": last}
        terms[name] = known.get(name) or district.admin_post("/api/terms", body)["id"]
    return {"rooms": rooms, "terms": terms}


def _upload(district: District, term_id: str, name: str, data: bytes) -> Any:
    return district.client.post(
        f"/api/terms/{term_id}/timetable",
        files={"file": (name, data)},
        headers=district.headers("admin"),
    )


def _read(data: bytes) -> list[list[Any]]:
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return [list(r) for r in sheet.iter_rows(values_only=True)]


def _sheet(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_timetable_goes_out_as_xlsx_and_comes_back_the_same(
    district: District, setup: dict[str, Any]
) -> None:
    rooms, terms = setup["rooms"], setup["terms"]
    autumn, spring = terms["2040秋"], terms["2041春"]
    district.admin_post(f"/api/terms/{autumn}/slots", slot_body(
        1, 1, rooms["301"], district.ids["teacher"], [rooms["东山教学点"], rooms["西岭教学点"]],
        title="圆的面积", recording_policy="always", start_mode="time"))  # fmt: skip
    district.admin_post(f"/api/terms/{autumn}/slots", slot_body(
        3, 2, rooms["301"], district.ids["other_teacher"], [rooms["西岭教学点"]]))  # fmt: skip
    out = district.client.get(
        f"/api/terms/{autumn}/timetable.xlsx", headers=district.headers("teacher")
    )
    assert out.status_code == 200
    assert "filename*=UTF-8''2040" in out.headers["content-disposition"]
    rows = [
        list(r) for r in load_workbook(io.BytesIO(out.content)).active.iter_rows(values_only=True)
    ]  # type: ignore[union-attr]
    assert tuple(rows[0]) == HEADERS
    receivers = "城关小学/东山教学点、城关小学/西岭教学点"
    assert rows[1] == ["周一", "1", "08:00", "08:45", "数学", "三年级", "圆的面积", "城关小学/301",
                       "teacher", receivers, "总是录制", "按时开始"]  # fmt: skip
    imported = _upload(district, spring, "课表.xlsx", out.content)
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == 8  # 4 weeks, two slots a week
    again = district.client.get(
        f"/api/terms/{spring}/timetable.xlsx", headers=district.headers("admin")
    )
    rows_again = [
        list(r) for r in load_workbook(io.BytesIO(again.content)).active.iter_rows(values_only=True)
    ]  # type: ignore[union-attr]
    assert rows_again == rows
    # Importing the same sheet again keeps the slots (and so their exceptions): nothing moves.
    same = _upload(district, spring, "课表.xlsx", out.content).json()
    assert (same["created"], same["updated"], same["removed"]) == (0, 0, 0)
    # CSV the same way (UTF-8 with BOM, as Excel and WPS want it).
    csv_out = district.client.get(
        f"/api/terms/{spring}/timetable.csv", headers=district.headers("admin")
    )
    assert csv_out.content.startswith("\ufeff".encode())
    parsed = list(csv.reader(io.StringIO(csv_out.content.decode("utf-8-sig"))))
    assert parsed == [["" if c is None else str(c) for c in r] for r in rows]
    one_row = "\n".join(",".join(r) for r in parsed[:2]).encode("utf-8-sig")
    replaced = _upload(district, spring, "课表.csv", one_row).json()
    assert replaced["removed"] == 4
    assert len(term_lessons(district, "2041-03-04", "2041-03-29")) == 4


def test_a_sheet_with_wrong_columns_or_cells_is_refused_naming_row_and_column(
    district: District, setup: dict[str, Any]
) -> None:
    term = setup["terms"]["2041春"]
    good = ["周二", 3, "10:00", "10:45", "语文", "一年级", "静夜思", "城关小学/301", "teacher",
            "城关小学/东山教学点", "教师决定", "教师点击"]  # fmt: skip
    wrong_header = list(HEADERS)
    wrong_header[2] = "开始时间"
    response = _upload(district, term, "t.xlsx", _sheet([wrong_header, good]))
    assert error(response) == (422, "sheet_columns")
    assert response.json()["error"]["message"].startswith(
        "Row 1, column C: expected 开始, found 开始时间"
    )
    cases = [
        (0, "周六", "Row 3, column A (星期)"),
        (2, "十点", "Row 3, column C (开始)"),
        (7, "301", "Row 3, column H (主讲教室)"),
        (7, "城关小学/999", "Row 3, column H (主讲教室): no classroom 城关小学/999"),
        (8, "nobody", "Row 3, column I (主讲教师账号): no active teacher nobody"),
        (9, "城关小学/不存在", "Row 3, column J (接收教室): no classroom"),
        (10, "看情况", "Row 3, column K (录制)"),
    ]
    for column, value, message in cases:
        bad = list(good)
        bad[column] = value
        response = _upload(district, term, "t.xlsx", _sheet([list(HEADERS), good, bad]))
        assert error(response) == (422, "sheet_value"), (value, response.text)
        assert response.json()["error"]["message"].startswith(message), response.text
    clash = list(good)
    clash[8] = "other-teacher"  # same lead classroom, same time, another teacher
    clash[1] = 4
    clash[2], clash[3] = "10:30", "11:15"
    response = _upload(district, term, "t.xlsx", _sheet([list(HEADERS), good, clash]))
    assert error(response) == (409, "timetable_conflict")
    assert response.json()["error"]["message"].startswith("Rows ")
    assert error(_upload(district, term, "t.xlsx", b"not a workbook")) == (422, "sheet_unreadable")

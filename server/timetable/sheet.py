"""The timetable as a spreadsheet (XLSX or CSV) with Chinese headers, for county IT staff
who keep timetables in Excel/WPS.

One row per weekly slot. Classrooms are written 学校/教室 (a classroom's name is unique
within its school), teachers by their sign-in name (display names repeat). Reading checks
the header row first, then every cell, and names the row and column of the first bad cell:
`Row 5, column H (主讲教室): ...`. Parsing and writing run in a worker thread.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, time

from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter

HEADERS = (
    "星期", "节次", "开始", "结束", "学科", "年级", "课题",
    "主讲教室", "主讲教师账号", "接收教室", "录制", "开始方式",
)  # fmt: skip
WEEKDAYS = {"周一": 1, "周二": 2, "周三": 3, "周四": 4, "周五": 5}
WEEKDAY_NAMES = {v: k for k, v in WEEKDAYS.items()}
POLICIES = {"总是录制": "always", "不录制": "never", "教师决定": "teacher"}
POLICY_NAMES = {v: k for k, v in POLICIES.items()}
START_MODES = {"教师点击": "click", "按时开始": "time"}
START_MODE_NAMES = {v: k for k, v in START_MODES.items()}
# Receiving classrooms in one cell: 、 as Chinese lists write it; ; and , accepted too.
LIST_SEPARATORS = ("、", ";", "；", ",", "，")
MAX_ROWS = 2000


class SheetError(ValueError):
    """A bad sheet; `code` is sheet_columns, sheet_value or sheet_unreadable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SheetRow:
    row: int  # 1-based, as the spreadsheet shows it
    weekday: int
    period: int
    starts: time
    ends: time
    subject: str
    grade: str
    title: str
    lead: str  # 学校/教室
    teacher: str  # username
    receivers: tuple[str, ...]
    recording_policy: str
    start_mode: str


def cell_error(row: int, column: int, message: str) -> SheetError:
    where = f"Row {row}, column {get_column_letter(column)} ({HEADERS[column - 1]})"
    return SheetError("sheet_value", f"{where}: {message}")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _time(value: object, row: int, column: int) -> time:
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, time):
        return value
    text = _text(value)
    try:
        return time.fromisoformat(text if len(text) != 4 else "0" + text)
    except ValueError:
        raise cell_error(row, column, f"{text or '(empty)'} is not a time like 08:00") from None


def _choice(value: object, choices: dict[str, str], row: int, column: int, default: str) -> str:
    text = _text(value)
    if not text:
        return default
    if text in choices:
        return choices[text]
    if text in choices.values():
        return text
    raise cell_error(row, column, f"{text} is not one of {'、'.join(choices)}")


def parse_rows(rows: list[list[object]]) -> list[SheetRow]:
    if not rows:
        raise SheetError("sheet_columns", "The sheet is empty; row 1 must hold the headers.")
    header = [_text(v) for v in rows[0]]
    while header and not header[-1]:
        header.pop()
    for n, expected in enumerate(HEADERS, start=1):
        found = header[n - 1] if n <= len(header) else ""
        if found != expected:
            raise SheetError(
                "sheet_columns",
                f"Row 1, column {get_column_letter(n)}: expected {expected}, "
                f"found {found or '(empty)'}. Columns: {'、'.join(HEADERS)}.",
            )
    if len(header) > len(HEADERS):
        extra = get_column_letter(len(HEADERS) + 1)
        raise SheetError(
            "sheet_columns", f"Row 1, column {extra}: unexpected column {header[len(HEADERS)]}."
        )
    if len(rows) > MAX_ROWS + 1:
        raise SheetError("sheet_value", f"At most {MAX_ROWS} slots in one sheet.")
    parsed = []
    for number, raw in enumerate(rows[1:], start=2):
        cells = list(raw) + [None] * (len(HEADERS) - len(raw))
        if all(_text(c) == "" for c in cells):
            continue  # blank lines between days are common
        weekday_text = _text(cells[0])
        weekday = WEEKDAYS.get(weekday_text.replace("星期", "周"))
        if weekday is None and weekday_text in {"1", "2", "3", "4", "5"}:
            weekday = int(weekday_text)
        if weekday is None:
            raise cell_error(number, 1, f"{weekday_text or '(empty)'} is not 周一 ... 周五")
        period_text = _text(cells[1])
        if not period_text.isdigit() or not 1 <= int(period_text) <= 12:
            raise cell_error(number, 2, f"{period_text or '(empty)'} is not a period 1-12")
        starts, ends = _time(cells[2], number, 3), _time(cells[3], number, 4)
        if ends <= starts:
            raise cell_error(number, 4, "the period must end after it starts")
        lead, teacher = _text(cells[7]), _text(cells[8])
        if "/" not in lead:
            raise cell_error(number, 8, f"{lead or '(empty)'} is not written 学校/教室")
        if not teacher:
            raise cell_error(number, 9, "the lead teacher's sign-in name is missing")
        receivers_text = _text(cells[9])
        for sep in LIST_SEPARATORS[1:]:
            receivers_text = receivers_text.replace(sep, LIST_SEPARATORS[0])
        receivers = tuple(r.strip() for r in receivers_text.split("、") if r.strip())
        for receiver in receivers:
            if "/" not in receiver:
                raise cell_error(number, 10, f"{receiver} is not written 学校/教室")
        parsed.append(
            SheetRow(
                row=number,
                weekday=weekday,
                period=int(period_text),
                starts=starts,
                ends=ends,
                subject=_text(cells[4])[:64],
                grade=_text(cells[5])[:32],
                title=_text(cells[6])[:200],
                lead=lead,
                teacher=teacher,
                receivers=receivers,
                recording_policy=_choice(cells[10], POLICIES, number, 11, "teacher"),
                start_mode=_choice(cells[11], START_MODES, number, 12, "click"),
            )
        )
    return parsed


def read_sheet(data: bytes, filename: str) -> list[SheetRow]:
    """Rows of an .xlsx or .csv upload (CSV: UTF-8, with or without BOM, or GB18030)."""
    if filename.lower().endswith(".csv"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise SheetError("sheet_unreadable", "The CSV file is neither UTF-8 nor GB18030.")
        return parse_rows([list(r) for r in csv.reader(io.StringIO(text))])
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise SheetError(
            "sheet_unreadable", "The file is not an .xlsx workbook (save it as .xlsx or .csv)."
        ) from None
    sheet = book.worksheets[0]
    rows = [list(r) for r in sheet.iter_rows(values_only=True, max_row=MAX_ROWS + 2)]
    book.close()
    return parse_rows(rows)


def row_values(row: SheetRow) -> list[str]:
    return [
        WEEKDAY_NAMES[row.weekday], str(row.period), f"{row.starts:%H:%M}", f"{row.ends:%H:%M}",
        row.subject, row.grade, row.title, row.lead, row.teacher, "、".join(row.receivers),
        POLICY_NAMES[row.recording_policy], START_MODE_NAMES[row.start_mode],
    ]  # fmt: skip


def write_xlsx(rows: list[SheetRow], title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31] or "课表"
    sheet.append(list(HEADERS))
    for row in rows:
        sheet.append(row_values(row))
    for n, width in enumerate((6, 6, 8, 8, 8, 8, 20, 22, 14, 40, 10, 10), start=1):
        sheet.column_dimensions[get_column_letter(n)].width = width
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_csv(rows: list[SheetRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    for row in rows:
        writer.writerow(row_values(row))
    # A BOM: Excel and WPS open UTF-8 CSV with Chinese text correctly only with it.
    return out.getvalue().encode("utf-8-sig")

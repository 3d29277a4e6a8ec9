"""The summary as XLSX (openpyxl) and CSV, with Chinese headers, the figures as the API gives."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook

GROUP_HEADER = {"county": "县/市", "school": "学校", "subject": "学科", "teacher": "教师"}

# (field, header) of every breakdown column, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("scheduled", "排课节数"),
    ("held", "开课节数"),
    ("cancelled", "取消节数"),
    ("not_held", "未开课节数"),
    ("on_time", "准时开课节数"),
    ("on_time_rate", "准时开课率"),
    ("receivers_per_lesson", "每节接收教室数"),
    ("delivered_hours", "授课时长(小时)"),
    ("expected", "应到接收教室"),
    ("present", "实到接收教室"),
    ("late", "迟到"),
    ("attendance_rate", "出勤率"),
    ("received_hours", "接收时长(小时)"),
    ("patrolled", "巡课节数"),
    ("patrol_rate", "巡课覆盖率"),
    ("talks", "巡课对讲次数"),
    ("evaluations", "评课条数"),
    ("mean_score", "平均评分"),
    ("recordings", "录制节数"),
    ("exemplary", "示范课"),
)
QUALITY = (("good", "良好"), ("fair", "一般"), ("poor", "较差"), ("bad", "很差"),
           ("unknown", "无数据"))  # fmt: skip
POINT_COLUMNS = (
    ("name", "教学点"),
    ("county", "县/市"),
    ("hours", "接收时长(小时)"),
    ("expected", "应到"),
    ("present", "实到"),
    ("attendance_rate", "出勤率"),
)


def _period(data: dict[str, Any]) -> str:
    period = data["period"]
    return f"{period['first_day']}至{period['last_day']}"


def filename(data: dict[str, Any], ext: str) -> str:
    return f"{data['scope']['name']}督导报表_{_period(data)}.{ext}"


def _rows(data: dict[str, Any]) -> list[list[Any]]:
    header = [GROUP_HEADER[data["by"]], *(h for _, h in COLUMNS)]
    body = [
        [row["name"] or row["key"] or "", *(row[f] for f, _ in COLUMNS)] for row in data["rows"]
    ]
    total = ["合计", *(data["totals"][f] for f, _ in COLUMNS)]
    return [header, *body, total]


def write_csv(data: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in _rows(data):
        writer.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def write_xlsx(data: dict[str, Any]) -> bytes:
    book = Workbook()
    overview = book.active
    overview.title = "总览"
    overview.append(["范围", data["scope"]["name"]])
    overview.append(["时段", _period(data)])
    for field, header in COLUMNS:
        overview.append([header, data["totals"][field]])
    for band, header in QUALITY:
        overview.append([f"连接质量：{header}", data["quality"][band]])
    target = data["exemplary_target"]
    overview.append(["示范课目标", target["goal"]])
    overview.append(["全州示范课（累计）", target["district_exemplary"]])
    overview.append(["本范围示范课（累计）", target["exemplary"]])
    # A sheet's name may not hold "/" (Excel's rule; openpyxl refuses it).
    breakdown = book.create_sheet(f"按{GROUP_HEADER[data['by']].replace('/', '')}")
    for row in _rows(data):
        breakdown.append(row)
    weekly = book.create_sheet("周趋势")
    weekly.append(["周（周一）", *(h for _, h in COLUMNS)])
    for row in data["weekly"]:
        weekly.append([row["key"], *(row[f] for f, _ in COLUMNS)])
    points = book.create_sheet("教学点")
    points.append([h for _, h in POINT_COLUMNS])
    for point in data["teaching_points"]:
        points.append([point[f] for f, _ in POINT_COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

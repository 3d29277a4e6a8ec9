"""Stored figures of settled report weeks, and the triggers that mark what changed.

server/db/report_models.py says why; server/reports/stored_weeks.py reads and fills them.
Every table a report figure counts gets a trigger that adds a mark (school, day) for the old
and the new row, so every writer marks without knowing about it.

Revision ID: 0011_report_weeks
Revises: 0010_receiver_count
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision: str = "0011_report_weeks"
down_revision: str | None = "0010_receiver_count"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INTS = (
    "scheduled held cancelled not_held on_time receivers patrolled talks evaluations scored "
    "recordings exemplary expected present late quality_good quality_fair quality_poor "
    "quality_bad quality_unknown"
).split()
_FLOATS = ("delivered_hours", "score_sum", "received_hours")


class _Source(NamedTuple):  # not a dataclass: Alembic loads this file outside sys.modules
    """A table whose rows a figure counts: how a row (R: NEW or OLD) names its school and
    day. `day` is a timestamp ("utc": its UTC day), a date, or every day of the school."""

    table: str
    school: str
    day: tuple[str, str]  # ("utc", timestamp) | ("date", date) | ("all", "")
    tables: str = ""  # the lookup's FROM clause ("": the row alone)
    where: str = "TRUE"
    columns: str = ""  # UPDATE OF these only, and no insert or delete ("": any write)


_LESSON = "lessons l JOIN classrooms c ON c.id = l.lead_classroom_id"
_SOURCES = (
    _Source("lessons", "c.school_id", ("utc", "R.scheduled_start"), "classrooms c",
            "c.id = R.lead_classroom_id"),
    _Source("lesson_attendance", "R.school_id", ("date", "R.day")),
    *(
        _Source(table, "c.school_id", ("utc", "l.scheduled_start"), _LESSON, "l.id = R.lesson_id")
        for table in ("patrol_talks", "evaluation_notes", "library_recordings")
    ),
    _Source("library_evaluations", "c.school_id", ("utc", "l.scheduled_start"),
            f"{_LESSON} JOIN library_recordings r ON r.lesson_id = l.id", "r.id = R.recording_id"),
    _Source("slot_exceptions", "c.school_id", ("date", "R.day"),
            "timetable_slots s JOIN classrooms c ON c.id = s.lead_classroom_id",
            "s.id = R.slot_id"),
    # A classroom or a slot that moves to another school moves every week's figures.
    _Source("classrooms", "R.school_id", ("all", ""), columns="school_id"),
    _Source("timetable_slots", "c.school_id", ("all", ""), "classrooms c",
            "c.id = R.lead_classroom_id", columns="lead_classroom_id"),
)  # fmt: skip


def _day(day: tuple[str, str], postgresql: bool) -> str:
    kind, value = day
    if kind == "all":  # server/db/report_models.ALL_DAYS
        return "DATE '1970-01-01'" if postgresql else "'1970-01-01'"
    if kind == "date":
        return value
    # SQLite keeps UTC timestamps as text; PostgreSQL's timestamptz needs the zone named.
    return f"({value} AT TIME ZONE 'UTC')::date" if postgresql else f"date({value})"


def _mark(source: _Source, row: str, postgresql: bool) -> str:
    """The statement that marks the school and day of `row` (NEW or OLD)."""
    school = source.school.replace("R.", f"{row}.")
    day = _day(source.day, postgresql).replace("R.", f"{row}.")
    where = source.where.replace("R.", f"{row}.")
    tables = f" FROM {source.tables}" if source.tables else ""
    return (
        f"INSERT INTO report_marks (day, school_id, n) SELECT {day}, {school}, 1{tables} "
        f"WHERE {where} AND {school} IS NOT NULL "
        "ON CONFLICT (day, school_id) DO UPDATE SET n = report_marks.n + 1;"
    )


def _postgresql(source: _Source) -> list[str]:
    name = f"report_mark_{source.table}"
    events = f"UPDATE OF {source.columns}" if source.columns else "INSERT OR DELETE OR UPDATE"
    return [
        f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('INSERT', 'UPDATE') THEN {_mark(source, "NEW", True)} END IF;
            IF TG_OP IN ('DELETE', 'UPDATE') THEN {_mark(source, "OLD", True)} END IF;
            RETURN NULL;
        END $$
        """,
        f"CREATE TRIGGER {name} AFTER {events} ON {source.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {name}()",
    ]


def _sqlite_names(source: _Source) -> list[str]:
    name = f"report_mark_{source.table}"
    return [f"{name}_update"] + ([] if source.columns else [f"{name}_insert", f"{name}_delete"])


def _sqlite(source: _Source) -> list[str]:
    new, old = _mark(source, "NEW", False), _mark(source, "OLD", False)
    update = f"UPDATE OF {source.columns}" if source.columns else "UPDATE"
    bodies = [f"AFTER {update} ON {source.table} BEGIN {old} {new} END"]
    if not source.columns:
        bodies += [
            f"AFTER INSERT ON {source.table} BEGIN {new} END",
            f"AFTER DELETE ON {source.table} BEGIN {old} END",
        ]
    return [
        f"CREATE TRIGGER {name} {body}"
        for name, body in zip(_sqlite_names(source), bodies, strict=True)
    ]


def upgrade() -> None:
    op.create_table(
        "report_marks",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "school_id", name=op.f("pk_report_marks")),
    )
    op.create_table(
        "report_weeks",
        sa.Column("monday", sa.Date(), nullable=False),
        sa.Column("grace_s", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("monday", name=op.f("pk_report_weeks")),
    )
    op.create_table(
        "report_school_weeks",
        sa.Column("monday", sa.Date(), nullable=False),
        sa.Column("school_id", sa.String(length=32), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _INTS),
        *(sa.Column(name, sa.Float(), nullable=False) for name in _FLOATS),
        sa.ForeignKeyConstraint(
            ["monday"], ["report_weeks.monday"],
            name=op.f("fk_report_school_weeks_monday_report_weeks"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"],
            name=op.f("fk_report_school_weeks_school_id_schools"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monday", "school_id", name=op.f("pk_report_school_weeks")),
    )  # fmt: skip
    with op.batch_alter_table("report_school_weeks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_school_weeks_school_id"), ["school_id"], unique=False
        )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for source in _SOURCES:
        for statement in _postgresql(source) if postgresql else _sqlite(source):
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for source in _SOURCES:
        if postgresql:
            op.execute(f"DROP TRIGGER report_mark_{source.table} ON {source.table}")
            op.execute(f"DROP FUNCTION report_mark_{source.table}()")
        else:
            for name in _sqlite_names(source):
                op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("report_school_weeks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_school_weeks_school_id"))
    op.drop_table("report_school_weeks")
    op.drop_table("report_weeks")
    op.drop_table("report_marks")

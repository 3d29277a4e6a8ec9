"""Attendance: each classroom's connected spans and one summary row per lesson and classroom.

Revision ID: 0005_attendance
Revises: 0004_patrol_talks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_attendance"
down_revision: str | None = "0004_patrol_talks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "attendance_spans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=False),
        sa.Column("joined_at", when, nullable=False),
        sa.Column("left_at", when, nullable=True),
        sa.Column("began", sa.String(length=16), nullable=False),
        sa.Column("ended", sa.String(length=16), nullable=True),
        _fk("attendance_spans", "classroom_id", "classrooms"),
        _fk("attendance_spans", "lesson_id", "lessons"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_spans")),
    )
    with op.batch_alter_table("attendance_spans", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attendance_spans_lesson_classroom", ["lesson_id", "classroom_id"], unique=False
        )
    op.create_table(
        "lesson_attendance",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=False),
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("joined_at", when, nullable=True),
        sa.Column("left_at", when, nullable=True),
        sa.Column("late_s", sa.Float(), nullable=True),
        sa.Column("present_s", sa.Float(), nullable=False),
        sa.Column("joins", sa.Integer(), nullable=False),
        sa.Column("periods_lost", sa.Integer(), nullable=False),
        sa.Column("stage_s", sa.Float(), nullable=False),
        sa.Column("quality_samples", sa.Integer(), nullable=False),
        sa.Column("loss_p50", sa.Float(), nullable=True),
        sa.Column("loss_p95", sa.Float(), nullable=True),
        sa.Column("jitter_p50_ms", sa.Float(), nullable=True),
        sa.Column("jitter_p95_ms", sa.Float(), nullable=True),
        sa.Column("rtt_p50_ms", sa.Float(), nullable=True),
        sa.Column("rtt_p95_ms", sa.Float(), nullable=True),
        sa.Column("updated_at", when, nullable=False),
        _fk("lesson_attendance", "classroom_id", "classrooms"),
        _fk("lesson_attendance", "lesson_id", "lessons"),
        _fk("lesson_attendance", "school_id", "schools"),
        sa.PrimaryKeyConstraint("lesson_id", "classroom_id", name=op.f("pk_lesson_attendance")),
    )
    with op.batch_alter_table("lesson_attendance", schema=None) as batch_op:
        for column in ("classroom_id", "day", "school_id", "status"):
            batch_op.create_index(
                batch_op.f(f"ix_lesson_attendance_{column}"), [column], unique=False
            )


def downgrade() -> None:
    op.drop_table("lesson_attendance")
    op.drop_table("attendance_spans")

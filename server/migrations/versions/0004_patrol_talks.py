"""Talkback log: every time an inspector talked to a classroom (who, to whom, start, duration).

Revision ID: 0004_patrol_talks
Revises: 0003_timetable
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_patrol_talks"
down_revision: str | None = "0003_timetable"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patrol_talks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("inspector", sa.String(length=200), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=True),
        sa.Column("classroom_name", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_s", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_patrol_talks_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_patrol_talks_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
            name=op.f("fk_patrol_talks_classroom_id_classrooms"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_talks")),
    )
    with op.batch_alter_table("patrol_talks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patrol_talks_lesson_id"), ["lesson_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patrol_talks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patrol_talks_lesson_id"))
    op.drop_table("patrol_talks")

"""The term timetable: terms, holidays and make-up days, weekly slots and their receivers,
per-date exceptions; lessons remember their slot and day, recording policy and start mode.

Revision ID: 0003_timetable
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_timetable"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms")),
        sa.UniqueConstraint("name", name=op.f("uq_terms_name")),
    )
    with op.batch_alter_table("terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_terms_first_day"), ["first_day"], unique=False)
        batch_op.create_index(batch_op.f("ix_terms_last_day"), ["last_day"], unique=False)

    op.create_table(
        "term_days",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("term_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("follows_weekday", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["term_id"], ["terms.id"], name=op.f("fk_term_days_term_id_terms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_term_days")),
    )
    with op.batch_alter_table("term_days", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_term_days_term_id"), ["term_id"], unique=False)

    op.create_table(
        "timetable_slots",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("term_id", sa.String(length=32), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("starts", sa.Time(), nullable=False),
        sa.Column("ends", sa.Time(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("grade", sa.String(length=32), nullable=False),
        sa.Column("lead_classroom_id", sa.String(length=32), nullable=False),
        sa.Column("teacher_id", sa.String(length=32), nullable=False),
        sa.Column(
            "recording_policy", sa.String(length=16), nullable=False, server_default="teacher"
        ),
        sa.Column("start_mode", sa.String(length=16), nullable=False, server_default="click"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_classroom_id"],
            ["classrooms.id"],
            name=op.f("fk_timetable_slots_lead_classroom_id_classrooms"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["accounts.id"],
            name=op.f("fk_timetable_slots_teacher_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["term_id"],
            ["terms.id"],
            name=op.f("fk_timetable_slots_term_id_terms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timetable_slots")),
    )
    with op.batch_alter_table("timetable_slots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_timetable_slots_lead_classroom_id"), ["lead_classroom_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_timetable_slots_teacher_id"), ["teacher_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_timetable_slots_term_id"), ["term_id"], unique=False)

    op.create_table(
        "slot_exceptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("slot_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("new_day", sa.Date(), nullable=True),
        sa.Column("new_starts", sa.Time(), nullable=True),
        sa.Column("new_ends", sa.Time(), nullable=True),
        sa.Column("teacher_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["timetable_slots.id"],
            name=op.f("fk_slot_exceptions_slot_id_timetable_slots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["accounts.id"],
            name=op.f("fk_slot_exceptions_teacher_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_exceptions")),
        sa.UniqueConstraint("slot_id", "day", name=op.f("uq_slot_exceptions_slot_id")),
    )
    with op.batch_alter_table("slot_exceptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slot_exceptions_slot_id"), ["slot_id"], unique=False)

    op.create_table(
        "slot_receivers",
        sa.Column("slot_id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
            name=op.f("fk_slot_receivers_classroom_id_classrooms"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["timetable_slots.id"],
            name=op.f("fk_slot_receivers_slot_id_timetable_slots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("slot_id", "classroom_id", name=op.f("pk_slot_receivers")),
    )
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("slot_day", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "recording_policy", sa.String(length=16), nullable=False, server_default="teacher"
            )
        )
        batch_op.add_column(
            sa.Column("start_mode", sa.String(length=16), nullable=False, server_default="click")
        )
        batch_op.create_index(batch_op.f("ix_lessons_slot_day"), ["slot_day"], unique=False)
        batch_op.create_index(batch_op.f("ix_lessons_slot_id"), ["slot_id"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_lessons_slot_id"), ["slot_id", "slot_day"])
        batch_op.create_foreign_key(
            batch_op.f("fk_lessons_slot_id_timetable_slots"),
            "timetable_slots",
            ["slot_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_lessons_slot_id_timetable_slots"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_lessons_slot_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_lessons_slot_id"))
        batch_op.drop_index(batch_op.f("ix_lessons_slot_day"))
        batch_op.drop_column("start_mode")
        batch_op.drop_column("recording_policy")
        batch_op.drop_column("slot_day")
        batch_op.drop_column("slot_id")

    op.drop_table("slot_receivers")
    with op.batch_alter_table("slot_exceptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slot_exceptions_slot_id"))

    op.drop_table("slot_exceptions")
    with op.batch_alter_table("timetable_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timetable_slots_term_id"))
        batch_op.drop_index(batch_op.f("ix_timetable_slots_teacher_id"))
        batch_op.drop_index(batch_op.f("ix_timetable_slots_lead_classroom_id"))

    op.drop_table("timetable_slots")
    with op.batch_alter_table("term_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_term_days_term_id"))

    op.drop_table("term_days")
    with op.batch_alter_table("terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terms_last_day"))
        batch_op.drop_index(batch_op.f("ix_terms_first_day"))

    op.drop_table("terms")

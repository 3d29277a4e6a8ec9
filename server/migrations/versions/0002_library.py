"""The course-example library: recordings, replay evaluations, exemplary workflow steps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "library_recordings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("lesson_id", sa.String(length=32), nullable=True),
        sa.Column("directory", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("grade", sa.String(length=32), nullable=False),
        sa.Column("textbook_version", sa.String(length=64), nullable=False),
        sa.Column("volume", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.Column("teacher", sa.String(length=200), nullable=False),
        sa.Column("teacher_id", sa.String(length=32), nullable=True),
        sa.Column("school", sa.String(length=200), nullable=False),
        sa.Column("district", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("tracks", sa.JSON(), nullable=False),
        sa.Column("rendition_state", sa.String(length=16), nullable=False),
        sa.Column("rendition_progress", sa.Float(), nullable=False),
        sa.Column("rendition_error", sa.Text(), nullable=True),
        sa.Column("rendition_files", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("exemplary_state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_library_recordings_lesson_id_lessons"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"],
            ["accounts.id"],
            name=op.f("fk_library_recordings_teacher_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_recordings")),
        sa.UniqueConstraint("directory", name=op.f("uq_library_recordings_directory")),
    )
    with op.batch_alter_table("library_recordings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_library_recordings_exemplary_state"), ["exemplary_state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_library_recordings_grade"), ["grade"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_library_recordings_lesson_id"), ["lesson_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_library_recordings_score"), ["score"], unique=False)
        batch_op.create_index(batch_op.f("ix_library_recordings_stage"), ["stage"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_library_recordings_started_at"), ["started_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_library_recordings_subject"), ["subject"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_library_recordings_teacher_id"), ["teacher_id"], unique=False
        )

    op.create_table(
        "exemplary_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recording_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_exemplary_steps_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["library_recordings.id"],
            name=op.f("fk_exemplary_steps_recording_id_library_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exemplary_steps")),
    )
    with op.batch_alter_table("exemplary_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exemplary_steps_recording_id"), ["recording_id"], unique=False
        )

    op.create_table(
        "library_evaluations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("recording_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("author_role", sa.String(length=16), nullable=False),
        sa.Column("t_s", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_library_evaluations_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["library_recordings.id"],
            name=op.f("fk_library_evaluations_recording_id_library_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_evaluations")),
    )
    with op.batch_alter_table("library_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_library_evaluations_recording_id"), ["recording_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("library_evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_library_evaluations_recording_id"))

    op.drop_table("library_evaluations")
    with op.batch_alter_table("exemplary_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exemplary_steps_recording_id"))

    op.drop_table("exemplary_steps")
    with op.batch_alter_table("library_recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_library_recordings_teacher_id"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_subject"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_started_at"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_stage"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_score"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_lesson_id"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_grade"))
        batch_op.drop_index(batch_op.f("ix_library_recordings_exemplary_state"))

    op.drop_table("library_recordings")

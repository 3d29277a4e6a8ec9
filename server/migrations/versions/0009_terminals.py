"""Classroom terminals: one-time enrollment codes and the enrolled devices' credentials.

Revision ID: 0009_terminals
Revises: 0008_rubrics
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_terminals"
down_revision: str | None = "0008_rubrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _classroom_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["classroom_id"],
        ["classrooms.id"],
        name=op.f(f"fk_{table}_classroom_id_classrooms"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "terminal_enrollments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        _classroom_fk("terminal_enrollments"),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["accounts.id"],
            name=op.f("fk_terminal_enrollments_created_by_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminal_enrollments")),
        sa.UniqueConstraint("code_sha256", name=op.f("uq_terminal_enrollments_code_sha256")),
    )
    with op.batch_alter_table("terminal_enrollments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_terminal_enrollments_classroom_id"), ["classroom_id"], unique=False
        )
    op.create_table(
        "classroom_terminals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credential_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _classroom_fk("classroom_terminals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classroom_terminals")),
        sa.UniqueConstraint(
            "credential_sha256", name=op.f("uq_classroom_terminals_credential_sha256")
        ),
    )
    with op.batch_alter_table("classroom_terminals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_classroom_terminals_classroom_id"), ["classroom_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("classroom_terminals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_classroom_terminals_classroom_id"))
    op.drop_table("classroom_terminals")
    with op.batch_alter_table("terminal_enrollments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terminal_enrollments_classroom_id"))
    op.drop_table("terminal_enrollments")

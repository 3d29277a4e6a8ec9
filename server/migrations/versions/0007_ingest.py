"""Ingest: WHIP credentials (encoders, OBS) and RTSP sources (录播 hosts) per classroom.

Revision ID: 0007_ingest
Revises: 0006_counties
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_ingest"
down_revision: str | None = "0006_counties"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _owned(table: str) -> list[sa.SchemaItem]:
    """The id, classroom and creator columns both tables share, with their constraints."""
    return [
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=32), nullable=False),
        sa.Column("created_by_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
            name=op.f(f"fk_{table}_classroom_id_classrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["accounts.id"],
            name=op.f(f"fk_{table}_created_by_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "whip_credentials",
        *_owned("whip_credentials"),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_whip_credentials_token_sha256")),
    )
    with op.batch_alter_table("whip_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_whip_credentials_classroom_id"), ["classroom_id"], unique=False
        )
    op.create_table(
        "rtsp_sources",
        *_owned("rtsp_sources"),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("password_sealed", sa.String(length=1000), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("classroom_id", "source", name=op.f("uq_rtsp_sources_classroom_id")),
    )
    with op.batch_alter_table("rtsp_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rtsp_sources_classroom_id"), ["classroom_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rtsp_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rtsp_sources_classroom_id"))
    op.drop_table("rtsp_sources")
    with op.batch_alter_table("whip_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_whip_credentials_classroom_id"))
    op.drop_table("whip_credentials")

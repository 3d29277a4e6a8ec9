"""Evaluation rubrics (评课量表) with kept versions; evaluations name the version they used.

Seeds the district's default rubric (the five items replay evaluations and reviews used,
0-10, equal weights) and, as a rubric not in use, the four items live notes were scored on
before (0-100), so every old evaluation still shows its own items.

Revision ID: 0008_rubrics
Revises: 0007_ingest
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008_rubrics"
down_revision: str | None = "0007_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_RUBRIC = "7b1c0f0e5d2a4c1e9a60d1f0c0de0001"
DEFAULT_VERSION = "7b1c0f0e5d2a4c1e9a60d1f0c0de0002"
LIVE_RUBRIC = "7b1c0f0e5d2a4c1e9a60d1f0c0de0003"
LIVE_VERSION = "7b1c0f0e5d2a4c1e9a60d1f0c0de0004"
DEFAULT_ITEMS = [
    {"key": "goals", "label": "教学目标", "weight": 20},
    {"key": "content", "label": "教学内容", "weight": 20},
    {"key": "method", "label": "教学方法", "weight": 20},
    {"key": "interaction", "label": "师生互动", "weight": 20},
    {"key": "effect", "label": "教学效果", "weight": 20},
]
LIVE_ITEMS = [
    {"key": "goal", "label": "教学目标", "weight": 25},
    {"key": "process", "label": "教学过程", "weight": 25},
    {"key": "effect", "label": "教学效果", "weight": 25},
    {"key": "interaction", "label": "师生互动", "weight": 25},
]
SCORED = ("evaluation_notes", "library_evaluations", "exemplary_steps")


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    rubrics = op.create_table(
        "rubrics",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("in_use", sa.Boolean(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubrics")),
        sa.UniqueConstraint("name", name=op.f("uq_rubrics_name")),
    )
    versions = op.create_table(
        "rubric_versions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rubric_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scale_max", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.ForeignKeyConstraint(
            ["rubric_id"], ["rubrics.id"], name=op.f("fk_rubric_versions_rubric_id_rubrics")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_versions")),
        sa.UniqueConstraint("rubric_id", "version", name=op.f("uq_rubric_versions_rubric_id")),
    )
    with op.batch_alter_table("rubric_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rubric_versions_rubric_id"), ["rubric_id"], unique=False
        )
    for table in SCORED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("rubric_version_id", sa.String(length=32), nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_rubric_version_id_rubric_versions"),
                "rubric_versions",
                ["rubric_version_id"],
                ["id"],
            )

    now = datetime.now(UTC)
    op.bulk_insert(
        rubrics,
        [
            {"id": DEFAULT_RUBRIC, "name": "评课量表", "in_use": True, "created_at": now},
            {"id": LIVE_RUBRIC, "name": "巡课记录原评分项", "in_use": False, "created_at": now},
        ],
    )
    op.bulk_insert(
        versions,
        [
            {
                "id": DEFAULT_VERSION,
                "rubric_id": DEFAULT_RUBRIC,
                "version": 1,
                "scale_max": 10,
                "items": DEFAULT_ITEMS,
                "author": "",
                "created_at": now,
            },
            {
                "id": LIVE_VERSION,
                "rubric_id": LIVE_RUBRIC,
                "version": 1,
                "scale_max": 100,
                "items": LIVE_ITEMS,
                "author": "",
                "created_at": now,
            },
        ],
    )
    # Scores given before rubrics existed: replay evaluations and reviews on the five items,
    # live notes on the four. An empty scores object (JSON '{}') names no version.
    for table, version in (
        ("library_evaluations", DEFAULT_VERSION),
        ("exemplary_steps", DEFAULT_VERSION),
        ("evaluation_notes", LIVE_VERSION),
    ):
        op.execute(
            sa.text(
                f"UPDATE {table} SET rubric_version_id = :version "
                "WHERE scores IS NOT NULL AND CAST(scores AS TEXT) NOT IN ('{}', 'null')"
            ).bindparams(version=version)
        )


def downgrade() -> None:
    for table in SCORED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_rubric_version_id_rubric_versions"), type_="foreignkey"
            )
            batch_op.drop_column("rubric_version_id")
    with op.batch_alter_table("rubric_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rubric_versions_rubric_id"))
    op.drop_table("rubric_versions")
    op.drop_table("rubrics")

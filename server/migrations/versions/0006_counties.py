"""Counties as rows: district (州) → county (县/市) → school; accounts carry a scope.

Each distinct non-empty free-text `schools.district` becomes one county (surrounding
spaces trimmed), and its schools point at it; schools with an empty district lie directly
under the district (州直属). Downgrading writes the county's name back as the text.

Revision ID: 0006_counties
Revises: 0005_attendance
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006_counties"
down_revision: str | None = "0005_attendance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

schools = sa.table(
    "schools",
    sa.column("id", sa.String),
    sa.column("district", sa.String),
    sa.column("county_id", sa.String),
)
counties = sa.table(
    "counties",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("code", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "counties",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counties")),
        sa.UniqueConstraint("name", name=op.f("uq_counties_name")),
    )
    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.add_column(sa.Column("county_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_schools_county_id"), ["county_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_schools_county_id_counties"),
            "counties",
            ["county_id"],
            ["id"],
            ondelete="RESTRICT",
        )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("county_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_accounts_county_id"), ["county_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_accounts_county_id_counties"),
            "counties",
            ["county_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    bind = op.get_bind()
    rows = bind.execute(sa.select(schools.c.id, schools.c.district)).all()
    names = sorted({(district or "").strip() for _, district in rows} - {""})
    now = datetime.now(UTC)
    ids = {name: uuid.uuid4().hex for name in names}
    if names:
        bind.execute(
            counties.insert(),
            [{"id": ids[n], "name": n, "code": "", "created_at": now} for n in names],
        )
    for school_id, district in rows:
        name = (district or "").strip()
        if name:
            bind.execute(
                schools.update().where(schools.c.id == school_id).values(county_id=ids[name])
            )

    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.drop_column("district")


def downgrade() -> None:
    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("district", sa.String(length=200), nullable=False, server_default="")
        )
    bind = op.get_bind()
    names = {i: n for i, n in bind.execute(sa.select(counties.c.id, counties.c.name))}
    for school_id, county_id in bind.execute(sa.select(schools.c.id, schools.c.county_id)).all():
        if county_id is not None:
            bind.execute(
                schools.update()
                .where(schools.c.id == school_id)
                .values(district=names.get(county_id, ""))
            )
    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.alter_column("district", server_default=None)
        batch_op.drop_constraint(batch_op.f("fk_schools_county_id_counties"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_schools_county_id"))
        batch_op.drop_column("county_id")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_accounts_county_id_counties"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_accounts_county_id"))
        batch_op.drop_column("county_id")
    op.drop_table("counties")

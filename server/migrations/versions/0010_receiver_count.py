"""lessons.receiver_count: how many receiving classrooms a lesson lists, kept by the database.

The 督导 report sums receiving classrooms over a term's lessons; counting lesson_receivers
(4 rows a lesson) per request cost a 425,600-row aggregate on a real-sized district. A
trigger on lesson_receivers keeps the count, so every writer (API, timetable generation,
demo, bulk COPY) keeps it right without knowing about it. Existing rows are backfilled.

Revision ID: 0010_receiver_count
Revises: 0009_terminals
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_receiver_count"
down_revision: str | None = "0009_terminals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = "UPDATE lessons SET receiver_count = receiver_count + 1 WHERE id = NEW.lesson_id;"
_REMOVE = "UPDATE lessons SET receiver_count = receiver_count - 1 WHERE id = OLD.lesson_id;"

_POSTGRESQL = [
    f"""
    CREATE FUNCTION lesson_receivers_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('INSERT', 'UPDATE') THEN {_ADD} END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN {_REMOVE} END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER lesson_receivers_count
    AFTER INSERT OR DELETE OR UPDATE OF lesson_id ON lesson_receivers
    FOR EACH ROW EXECUTE FUNCTION lesson_receivers_count()
    """,
]
_SQLITE = [
    f"CREATE TRIGGER lesson_receivers_count_insert AFTER INSERT ON lesson_receivers "
    f"BEGIN {_ADD} END",
    f"CREATE TRIGGER lesson_receivers_count_delete AFTER DELETE ON lesson_receivers "
    f"BEGIN {_REMOVE} END",
    f"CREATE TRIGGER lesson_receivers_count_update AFTER UPDATE OF lesson_id ON lesson_receivers "
    f"BEGIN {_REMOVE} {_ADD} END",
]


def upgrade() -> None:
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("receiver_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE lessons SET receiver_count = "
        "(SELECT count(*) FROM lesson_receivers WHERE lesson_receivers.lesson_id = lessons.id)"
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRESQL if postgresql else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER lesson_receivers_count ON lesson_receivers")
        op.execute("DROP FUNCTION lesson_receivers_count()")
    else:
        for suffix in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER lesson_receivers_count_{suffix}")
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.drop_column("receiver_count")

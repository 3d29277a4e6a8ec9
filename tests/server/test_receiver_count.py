"""lessons.receiver_count is kept by the database (migration 0010) whoever writes the roster:
inserts, removals, a row moved to another lesson, a lesson deleted; the migration backfills
lessons that existed before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from server.db.migrate import alembic_config, upgrade
from server.db.models import Account, Classroom, Lesson, School, lesson_receivers


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(Lesson.title, Lesson.receiver_count))
        return {title: n for title, n in rows}


async def _district(engine: AsyncEngine) -> tuple[list[str], dict[str, str]]:
    """Five classrooms and two lessons (no receivers yet): (classroom ids, lesson ids)."""
    async with AsyncSession(engine) as s, s.begin():
        school = School(name="中心校", kind="central")
        s.add(school)
        await s.flush()
        rooms = [Classroom(school_id=school.id, name=f"教室{n}") for n in range(5)]
        teacher = Account(username="t", display_name="t", role="teacher", password_hash="x")
        s.add_all([*rooms, teacher])
        await s.flush()
        start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
        lessons = {
            title: Lesson(title=title, teacher_id=teacher.id, lead_classroom_id=rooms[0].id,
                          scheduled_start=start, scheduled_end=start + timedelta(minutes=45))
            for title in ("A", "B")
        }  # fmt: skip
        s.add_all(lessons.values())
        await s.flush()
        return [r.id for r in rooms], {t: lesson.id for t, lesson in lessons.items()}


async def test_the_count_follows_every_roster_change(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_async_engine(database_url)
    try:
        rooms, lessons = await _district(engine)
        assert await _counts(engine) == {"A": 0, "B": 0}
        async with engine.begin() as connection:
            await connection.execute(
                lesson_receivers.insert(),
                [{"lesson_id": lessons["A"], "classroom_id": r, "position": n}
                 for n, r in enumerate(rooms[1:])]
                + [{"lesson_id": lessons["B"], "classroom_id": rooms[1], "position": 0}],
            )  # fmt: skip
        assert await _counts(engine) == {"A": 4, "B": 1}
        async with engine.begin() as connection:
            await connection.execute(
                delete(lesson_receivers).where(lesson_receivers.c.classroom_id == rooms[4])
            )
            await connection.execute(
                update(lesson_receivers)
                .where(lesson_receivers.c.classroom_id == rooms[3])
                .values(lesson_id=lessons["B"])
            )
        assert await _counts(engine) == {"A": 2, "B": 2}
        async with engine.begin() as connection:
            await connection.execute(delete(Lesson).where(Lesson.id == lessons["A"]))
        assert await _counts(engine) == {"B": 2}
    finally:
        await engine.dispose()


async def test_the_migration_backfills_existing_lessons(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_async_engine(database_url)
    try:
        rooms, lessons = await _district(engine)
        async with engine.begin() as connection:
            await connection.execute(
                lesson_receivers.insert(),
                [{"lesson_id": lessons["A"], "classroom_id": r, "position": n}
                 for n, r in enumerate(rooms[1:4])],
            )  # fmt: skip
        config = alembic_config(database_url)
        await asyncio.to_thread(command.downgrade, config, "0009_terminals")
        await asyncio.to_thread(upgrade, database_url)
        assert await _counts(engine) == {"A": 3, "B": 0}
    finally:
        await engine.dispose()

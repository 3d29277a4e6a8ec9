"""0006_counties: free-text school districts become county rows, and back again."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server.db.migrate import alembic_config, upgrade

BEFORE = "0005_attendance"

SCHOOLS = [
    ("s1", "城关中心校", "示范县"),
    ("s2", "石门教学点", " 示范县 "),  # the same county, with stray spaces
    ("s3", "高山教学点", "山区县"),
    ("s4", "州一中", ""),  # directly under the district
]


async def _execute(url: str, *statements: tuple[str, dict[str, object]]) -> list[list[object]]:
    engine = create_async_engine(url)
    results = []
    try:
        async with engine.begin() as connection:
            for sql, params in statements:
                result = await connection.execute(text(sql), params)
                results.append([tuple(r) for r in result] if result.returns_rows else [])
    finally:
        await engine.dispose()
    return results


def test_districts_become_counties_and_come_back_on_downgrade(database_url: str) -> None:
    from alembic import command

    upgrade(database_url, BEFORE)
    insert = (
        "INSERT INTO schools (id, name, kind, district, created_at) "
        "VALUES (:id, :name, 'central', :district, CURRENT_TIMESTAMP)"
    )
    asyncio.run(
        _execute(
            database_url,
            *[(insert, {"id": i, "name": n, "district": d}) for i, n, d in SCHOOLS],
        )
    )

    upgrade(database_url)
    counties, schools = asyncio.run(
        _execute(
            database_url,
            ("SELECT name, code FROM counties ORDER BY name", {}),
            (
                "SELECT s.id, c.name FROM schools s LEFT JOIN counties c ON c.id = s.county_id "
                "ORDER BY s.id",
                {},
            ),
        )
    )
    assert sorted(counties) == sorted([("山区县", ""), ("示范县", "")])
    assert schools == [("s1", "示范县"), ("s2", "示范县"), ("s3", "山区县"), ("s4", None)]

    command.downgrade(alembic_config(database_url), BEFORE)
    (back,) = asyncio.run(
        _execute(database_url, ("SELECT id, district FROM schools ORDER BY id", {}))
    )
    assert back == [("s1", "示范县"), ("s2", "示范县"), ("s3", "山区县"), ("s4", "")]

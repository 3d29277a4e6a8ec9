"""Portable SQL pieces the report queries need: seconds since the epoch of a timestamp, and
planner settings for a report's transaction on PostgreSQL.

SQLite stores timestamps as text (julianday reads it); PostgreSQL has EXTRACT(EPOCH). One
expression type, compiled per dialect, keeps each report one query on both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class epoch_s(FunctionElement[float]):
    """Seconds since 1970-01-01 UTC of a timestamp column."""

    type = Float()
    inherit_cache = True
    name = "epoch_s"


@compiles(epoch_s, "sqlite")
def _sqlite(element: epoch_s, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"((julianday({compiler.process(column, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch_s, "postgresql")
def _postgresql(element: epoch_s, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(column, **kw)}) AS DOUBLE PRECISION)"


# A term report sorts and hashes ~100,000 lessons and ~400,000 attendance rows: with the
# default work_mem (4 MB) PostgreSQL spills them to disk, and its JIT spends ~90 ms compiling
# each query, more than the query saves. SET LOCAL ends with the report's transaction.
_REPORT_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '32MB'")


async def for_aggregates(session: AsyncSession) -> None:
    """Tune this transaction for a report's few large aggregates (PostgreSQL; else nothing)."""
    if session.get_bind().dialect.name == "postgresql":
        for statement in _REPORT_SETTINGS:
            await session.execute(text(statement))

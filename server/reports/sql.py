"""Portable SQL pieces the report queries need: seconds since the epoch of a timestamp.

SQLite stores timestamps as text (julianday reads it); PostgreSQL has EXTRACT(EPOCH). One
expression type, compiled per dialect, keeps each report one query on both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
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

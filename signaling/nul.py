"""Where a JSON value holds the NUL character (U+0000), which no tongke text may carry.

PostgreSQL cannot store NUL in text; both the signaling session and the HTTP API
(server/api/nul_guard.py) refuse it up front, naming the field.
"""

from __future__ import annotations

from typing import Any


def nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string holding NUL in a JSON value, or None."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None

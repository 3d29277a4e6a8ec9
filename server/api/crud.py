"""Helpers every resource route shares: fetch by id or 404, the common error responses.

One pattern for scoped resources (terms, slots, terminals; schools and classrooms to
follow): a route opens one session, fetches with `fetch_or_404`, validates, writes, and
answers the resource's Out shape.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server.api.errors import ErrorResponse, not_found

T = TypeVar("T")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


async def fetch_or_404(session: AsyncSession, model: type[T], id: str, what: str) -> T:
    row = await session.get(model, id)
    if row is None:
        raise not_found(what)
    return row

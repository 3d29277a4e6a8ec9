"""HTTP API under /api: auth, schools, classrooms, accounts, lessons, join links, library.

`api_router` is assembled on first access so that importing a helper such as
server.api.errors (which server.auth needs) does not pull in every route module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.api.errors import ApiError, install_error_handlers

if TYPE_CHECKING:
    from fastapi import APIRouter

    api_router: APIRouter

__all__ = ["ApiError", "api_router", "install_error_handlers"]


def build_api_router() -> APIRouter:
    from fastapi import APIRouter

    from server.api import (
        accounts,
        attendance,
        auth_routes,
        classrooms,
        counties,
        evaluations,
        faults,
        ingest,
        join,
        lessons,
        library,
        links,
        patrol_wall,
        reports,
        rubrics,
        schools,
        slots,
        terminals,
        terms,
        timetable_sheet,
    )

    router = APIRouter(prefix="/api")
    for module in (auth_routes, counties, schools, classrooms, accounts, lessons, links, join):
        router.include_router(module.router)
    router.include_router(evaluations.router)
    router.include_router(faults.router)
    router.include_router(library.router)
    router.include_router(ingest.router)
    router.include_router(terms.router)
    router.include_router(slots.router)
    router.include_router(timetable_sheet.router)
    router.include_router(reports.router)
    router.include_router(rubrics.router)
    router.include_router(patrol_wall.router)
    router.include_router(attendance.router)
    router.include_router(terminals.router)
    router.include_router(terminals.device_router)
    return router


def __getattr__(name: str) -> Any:
    if name == "api_router":
        router = build_api_router()
        globals()["api_router"] = router
        return router
    raise AttributeError(f"module 'server.api' has no attribute {name!r}")

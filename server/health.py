"""Liveness and readiness: /healthz says the process runs, /readyz that its parts answer."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server.api.access import access
from server.disk_space import service_folders, space_problem
from server.preflight import PROBE_TIMEOUT_S, StartupError, reason_of, writable_folder
from server.state import AppState, get_state

# A write every backend commits to disk, changing nothing: the schema version row.
DATABASE_WRITE = "UPDATE alembic_version SET version_num = version_num"

# Probes of load balancers and orchestrators, which sign in nowhere; they show no data.
health_router = APIRouter(
    tags=["health"], dependencies=[access(None, why="liveness and readiness probes")]
)


@health_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/readyz")
async def readyz(state: Annotated[AppState, Depends(get_state)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        # A write, committed: a full data folder fails sign-in, so it must fail here too.
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with state.db.sessions.begin() as session:
                await session.execute(text(DATABASE_WRITE))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it never raises
        checks["database"] = f"error: {reason_of(exc)}"
    for space in service_folders(state.settings):
        problem = space_problem(space, state.settings)
        checks[f"disk_{space.folder}"] = "ok" if problem is None else f"error: {problem}"
    try:
        await asyncio.to_thread(
            writable_folder, state.settings.effective_recording_root, "recording root"
        )
        checks["recording_root"] = "ok"
    except StartupError as exc:
        checks["recording_root"] = f"error: {exc.message}"
    try:
        await state.bus.ping()
        checks["bus"] = "ok"
    except Exception as exc:
        checks["bus"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    if state.tls is not None:
        # Details, not a check: a certificate near its end still serves (ready stays true).
        body["tls"] = {
            "certificate": str(state.tls.cert.path),
            "not_after": state.tls.cert.not_after.isoformat(),
            "warnings": state.tls.warnings(state.settings.public_url),
        }
    return JSONResponse(body, status_code=200 if ready else 503)

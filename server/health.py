"""Liveness and readiness: /healthz says the process runs, /readyz that its parts answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server.state import AppState, get_state

health_router = APIRouter(tags=["health"])


@health_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/readyz")
async def readyz(state: Annotated[AppState, Depends(get_state)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with state.db.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it never raises
        checks["database"] = f"error: {type(exc).__name__}"
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

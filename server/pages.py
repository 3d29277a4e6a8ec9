"""Routes the pages need beyond static files: join links and the device check's upload probe."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from server.api.access import access
from server.api.errors import ApiError
from server.state import AppState, get_state

# The join page is static (its link is checked by /api/join); the probe stores nothing.
pages_router = APIRouter(dependencies=[access(None, why="static page and a discarded probe")])

# The device check uploads this much at most; more is refused rather than read.
NETCHECK_MAX_BYTES = 2 * 1024 * 1024


@pages_router.get("/join/{code}", include_in_schema=False)
async def join_page(code: str, state: Annotated[AppState, Depends(get_state)]) -> FileResponse:
    """A classroom terminal opens its join link: the join page reads the code from the path."""
    return FileResponse(state.settings.web_dir / "join" / "index.html")


@pages_router.post("/api/netcheck/upload", status_code=204, tags=["device check"])
async def netcheck_upload(request: Request) -> Response:
    """Receives and discards a probe body, so the device check can time an upload."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > NETCHECK_MAX_BYTES:
            raise ApiError(413, "probe_too_large", "The upload probe is limited to 2 MiB.")
    return Response(status_code=204)

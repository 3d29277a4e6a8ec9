"""The signaling WebSocket endpoint: Origin check, then the connection belongs to signaling.

The join token arrives in the first message (docs/protocol.md); the room manager verifies it
with the app's JoinTokens. A browser must come from an allowed Origin: the origin the page
was served from (the handshake's own scheme://Host, or what a trusted proxy forwards; no
setting needed), public_url, this host:port, or allowed_origins. A page of another site
sends its own Origin and is refused. Clients that send no Origin header (the Python peers,
classroom terminals' native apps) are let through, since the token, not the Origin, is what
authorizes them.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from server.origin import request_origin
from server.state import AppState
from signaling.errors import CloseCode
from signaling.session import ConnectionClosed

ws_router = APIRouter()


class StarletteConnection:
    """signaling's Connection over a Starlette WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def receive(self) -> str | bytes:
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise ConnectionClosed() from exc
        if message["type"] == "websocket.disconnect":
            raise ConnectionClosed()
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ConnectionClosed() from exc

    async def close(self, code: int, reason: str) -> None:
        ws = self.websocket
        if (
            ws.application_state is WebSocketState.DISCONNECTED
            or ws.client_state is WebSocketState.DISCONNECTED
        ):
            return
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(code=code, reason=reason[:120])


def origin_allowed(origin: str | None, allowed: frozenset[str], own: str | None = None) -> bool:
    """`own`: the origin this handshake arrived on (same-origin is always allowed)."""
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    return origin in allowed or (own is not None and origin == own)


@ws_router.websocket("/ws")
async def signaling_socket(websocket: WebSocket) -> None:
    state: AppState = websocket.state.app
    allowed = state.settings.origins
    if state.cluster is not None:
        # Many nodes: a page served by another node is sent here by its join grant.
        allowed = allowed | state.cluster.origins
    own = request_origin(websocket, state.settings)
    if not origin_allowed(websocket.headers.get("origin"), allowed, own):
        # Refused before accept: the handshake fails (HTTP 403) with close code 4403.
        await websocket.close(code=CloseCode.ORIGIN_FORBIDDEN, reason="origin not allowed")
        return
    await websocket.accept()
    await state.rooms.serve(StarletteConnection(websocket), state.tokens.verify)

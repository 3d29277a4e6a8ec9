"""The signaling WebSocket endpoint. PLACEHOLDER: signaling helper replaces."""

from fastapi import APIRouter

ws_router = APIRouter()

"""HTTP API under /api. PLACEHOLDER: data helper replaces."""

from fastapi import APIRouter

api_router = APIRouter(prefix="/api")

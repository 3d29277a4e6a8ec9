"""Demo district. PLACEHOLDER: data helper replaces."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.state import AppState


async def seed_demo_if_empty(state: AppState) -> None:
    return None

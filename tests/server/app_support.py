"""Plain helpers of the HTTP API tests: settings for a test app and its state.

A module of its own, with a unique name: `from conftest import ...` would find another test
folder's conftest when several folders run together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from server.settings import Settings
from server.state import AppState


def make_settings(data_dir: Path, database_url: str = "", **extra: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        seed_demo=False,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        **extra,
    )


def app_state(client: TestClient) -> AppState:
    return client.app_state["app"]  # type: ignore[no-any-return]

"""A request that cannot get a database connection in time gets 503, not 500 or a hang."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from app_support import app_state, make_settings
from fastapi.testclient import TestClient
from shared_support import fresh_postgres_database, postgres_admin
from sqlalchemy.engine import make_url

from server.app import create_app
from server.state import AppState


def test_every_pooled_connection_busy_answers_503_busy_and_recovers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_pool_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        state: AppState = app_state(client)
        pool = state.db.engine.pool
        held: list[Any] = []

        async def take_every_connection() -> None:
            # The pool's size and overflow (SQLAlchemy's 5 + 10): nothing left for a request.
            for _ in range(pool.size() + pool._max_overflow):  # type: ignore[attr-defined]
                held.append(await state.db.engine.connect())

        async def give_back() -> None:
            for connection in held:
                await connection.close()

        client.portal.call(take_every_connection)  # type: ignore[union-attr]
        try:
            response = client.post("/api/auth/login", json={"username": "x", "password": "y"})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "busy"
            assert response.headers["retry-after"] == "2"
        finally:
            client.portal.call(give_back)  # type: ignore[union-attr]
        # Connections back: the same request is answered normally (a wrong password).
        response = client.post("/api/auth/login", json={"username": "x", "password": "y"})
        assert response.status_code == 401, response.text


@pytest.mark.postgres
def test_a_database_server_gone_answers_503_database_unavailable(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        with TestClient(create_app(settings)) as client:
            assert client.get("/api/library", params={"q": "x"}).status_code == 401  # warm pool
            # The database disappears under the running service (dropped, its sessions cut).
            name = make_url(url).database
            asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            response = client.post("/api/auth/login", json={"username": "x", "password": "y"})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
            assert response.headers["retry-after"] == "2"

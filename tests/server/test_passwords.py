"""Passwords: Argon2id hashes, wrong passwords refused, nothing stored in plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from server.db.models import Account
from server.passwords import hash_password, needs_rehash, verify_password
from server.state import AppState

if TYPE_CHECKING:
    from conftest import District


def test_a_password_hashes_to_argon2id_and_verifies() -> None:
    stored = hash_password("sesame-sesame")
    assert stored.startswith("$argon2id$")
    assert "sesame" not in stored
    assert verify_password(stored, "sesame-sesame")
    assert not needs_rehash(stored)


def test_production_hashes_use_at_least_the_rfc_9106_low_memory_cost() -> None:
    from server.passwords import PRODUCTION_HASHER

    # RFC 9106 second recommendation: t=3, 64 MiB; argon2-cffi's default profile.
    assert PRODUCTION_HASHER.time_cost >= 3
    assert PRODUCTION_HASHER.memory_cost >= 64 * 1024
    stored = PRODUCTION_HASHER.hash("sesame-sesame")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3")
    assert verify_password(stored, "sesame-sesame")


def test_a_wrong_password_is_refused() -> None:
    assert not verify_password(hash_password("sesame-sesame"), "sesame-sesamE")


def test_a_malformed_stored_hash_counts_as_a_mismatch() -> None:
    assert not verify_password("not-a-hash", "anything")


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("sesame-sesame") != hash_password("sesame-sesame")


def test_an_account_created_over_the_api_keeps_only_the_hash(district: District) -> None:
    password = "plain-text-never-stored"
    created = district.admin_post(
        "/api/accounts",
        {"username": "hashcheck", "display_name": "x", "role": "teacher", "password": password},
    )
    assert "password" not in created and "password_hash" not in created

    async def stored(state: AppState) -> str:
        async with state.db.sessions.begin() as session:
            return str(
                await session.scalar(
                    select(Account.password_hash).where(Account.id == created["id"])
                )
            )

    value = district.run(stored)
    assert value.startswith("$argon2id$") and password not in value
    assert verify_password(value, password)

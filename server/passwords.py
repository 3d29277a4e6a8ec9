"""Password hashing with Argon2id (argon2-cffi). Hashing is slow on purpose: call the
async helpers from request handlers so the event loop never waits on it."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's default profile: RFC 9106's low-memory recommendation (t=3, 64 MiB, p=4).
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; a malformed stored hash counts as a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


@functools.cache
def dummy_hash() -> str:
    """Verified when the username is unknown, so both paths cost the same time."""
    return _hasher.hash("tongke-no-such-account")

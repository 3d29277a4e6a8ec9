"""Join tokens: signed, short-lived, carrying exactly the grant they were issued with."""

from __future__ import annotations

import jwt
import pytest

from server.tokens import ALGORITHM, AUDIENCE, JoinTokens, TokenError
from signaling.grants import Control, Role, Source, default_grant


def test_a_token_round_trips_its_grant() -> None:
    tokens = JoinTokens("s3cret-for-tests-only-long-enough-0123456789", ttl_s=60)
    grant = default_grant("lesson-1", Role.RECEIVER, "石门教学点 三年级", classroom_id="room-2")
    assert tokens.verify(tokens.issue(grant)) == grant


def test_receiver_grant_denies_what_the_roles_table_does_not_name() -> None:
    grant = default_grant("lesson-1", Role.RECEIVER, "r")
    assert grant.may_publish(Source.CAMERA) and grant.may_publish(Source.MIC)
    assert not grant.may_publish(Source.SCREEN)
    assert not grant.may(Control.STAGE)
    assert grant.may(Control.HAND)


def test_patrol_grant_publishes_nothing() -> None:
    grant = default_grant("lesson-1", Role.PATROL, "巡课员")
    assert grant.publish == frozenset()
    assert grant.may(Control.NOTE)


def test_an_expired_token_is_refused_with_token_expired() -> None:
    tokens = JoinTokens("s3cret-for-tests-only-long-enough-0123456789", ttl_s=60)
    token = tokens.issue(default_grant("l", Role.LEAD, "lead"), ttl_s=-1)
    with pytest.raises(TokenError) as info:
        tokens.verify(token)
    assert info.value.code == "token_expired"


def test_a_token_signed_with_another_secret_is_refused_with_token_invalid() -> None:
    other = JoinTokens("another-secret-0123456789-0123456789-abcdef", ttl_s=60)
    token = other.issue(default_grant("l", Role.LEAD, "lead"))
    with pytest.raises(TokenError) as info:
        JoinTokens("s3cret-for-tests-only-long-enough-0123456789", ttl_s=60).verify(token)
    assert info.value.code == "token_invalid"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", None])
def test_garbage_is_refused_with_token_invalid(token: str) -> None:
    with pytest.raises(TokenError) as info:
        JoinTokens("s3cret-for-tests-only-long-enough-0123456789", ttl_s=60).verify(token)
    assert info.value.code == "token_invalid"


def test_a_token_naming_an_unknown_role_is_refused() -> None:
    secret = "s3cret-for-tests-only-long-enough-0123456789"
    claims = {"aud": AUDIENCE, "iat": 1, "exp": 2**40, "lesson": "l", "role": "superuser"}
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    with pytest.raises(TokenError) as info:
        JoinTokens(secret, ttl_s=60).verify(token)
    assert info.value.code == "token_invalid"
    assert "unknown grant" in info.value.message


def test_an_unsigned_token_is_refused() -> None:
    claims = {"aud": AUDIENCE, "iat": 1, "exp": 2**40, "lesson": "l", "role": "lead"}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(TokenError):
        JoinTokens("s3cret-for-tests-only-long-enough-0123456789", ttl_s=60).verify(token)

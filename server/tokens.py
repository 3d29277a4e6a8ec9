"""Join tokens: short-lived signed JWTs that name lesson, classroom, role and grants."""

from __future__ import annotations

import time
import uuid

import jwt

from signaling.grants import Control, Grant, Role, Source

ALGORITHM = "HS256"
AUDIENCE = "tongke-join"


class TokenError(Exception):
    """A join token was refused. `code` is the stable signaling/HTTP error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JoinTokens:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, grant: Grant, ttl_s: int | None = None) -> str:
        now = int(time.time())
        claims = {
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + (ttl_s if ttl_s is not None else self.ttl_s),
            "jti": uuid.uuid4().hex,
            "lesson": grant.lesson_id,
            "role": grant.role.value,
            "name": grant.name,
            "classroom": grant.classroom_id,
            "account": grant.account_id,
            "link": grant.link_id,
            "pub": sorted(s.value for s in grant.publish),
            "ctl": sorted(c.value for c in grant.controls),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Grant:
        if not isinstance(token, str) or not token:
            raise TokenError("token_invalid", "A join token is required.")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "aud", "lesson", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError(
                "token_expired", "The join token has expired; open the join link again."
            ) from None
        except jwt.PyJWTError as exc:
            raise TokenError("token_invalid", f"The join token is not valid: {exc}.") from None
        try:
            return Grant(
                lesson_id=str(claims["lesson"]),
                role=Role(claims["role"]),
                name=str(claims.get("name") or ""),
                classroom_id=claims.get("classroom"),
                account_id=claims.get("account"),
                link_id=claims.get("link"),
                publish=frozenset(Source(s) for s in claims.get("pub", [])),
                controls=frozenset(Control(c) for c in claims.get("ctl", [])),
            )
        except (ValueError, TypeError) as exc:
            raise TokenError(
                "token_invalid", f"The join token names an unknown grant: {exc}."
            ) from None

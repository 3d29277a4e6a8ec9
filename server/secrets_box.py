"""Secrets the service must use again but never show (an RTSP source's password).

Sealed with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived
from the service's secret key: a copy of the database alone does not reveal them. Changing
the secret key makes sealed passwords unreadable: the admin enters them again (the RTSP
source then shows ``unauthorized``).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretsBox:
    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"tongke secrets box v1\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode("ascii") if plain else ""

    def open(self, sealed: str) -> str:
        """The plain text; ValueError when it was sealed under another secret key."""
        if not sealed:
            return ""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise ValueError("sealed under another secret key") from None

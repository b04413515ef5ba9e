"""Page tokens at rest: sealed with Fernet when `TOKEN_ENCRYPTION_KEY` is set.

Sealed values carry a `fernet:` prefix, so a store written before the key was set still reads (its
tokens are sealed the next time each page is connected).
"""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)
PREFIX = "fernet:"


class TokenCipher:
    def __init__(self, key: str = "") -> None:
        self._fernet = Fernet(key.encode()) if key else None

    def seal(self, token: str) -> str:
        if not self._fernet or not token:
            return token
        return PREFIX + self._fernet.encrypt(token.encode()).decode()

    def open(self, stored: str) -> str:
        """The token, or "" when it cannot be read (sealed with another key, or no key set)."""
        if not stored.startswith(PREFIX):
            return stored
        if not self._fernet:
            log.error("a page token is sealed but TOKEN_ENCRYPTION_KEY is not set")
            return ""
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            log.error("a page token was sealed with another TOKEN_ENCRYPTION_KEY")
            return ""

"""Automatic persisted queries (Apollo's APQ): a client sends a document's SHA-256 instead of the
document, and the document only when the gateway does not know the hash yet.

`extensions.persistedQuery` is `{"version": 1, "sha256Hash": "<64 hex digits>"}`, on GET (in the
`extensions` parameter) or POST. A hash the gateway does not hold is answered 200 with the error
`PersistedQueryNotFound` (code PERSISTED_QUERY_NOT_FOUND), which Apollo's persisted-queries link
answers by sending the hash again with the document; a hash with a document is checked against it,
kept, and the document runs. Documents are kept by hash, the least recently used let go first, in
at most PERSISTED_QUERIES_MB; what runs them is the same parser and validation caches as a document
sent whole, so a known hash costs neither a parse nor a validation. With the setting at 0 every
hash is answered PersistedQueryNotSupported, and Apollo's link stops sending hashes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

NOT_FOUND = ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
NOT_SUPPORTED = ("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
_HEX = frozenset("0123456789abcdef")


class PersistedQueryError(Exception):
    """A hash the gateway cannot run: answered 200 with this one GraphQL error, as Apollo's link
    expects (it reads the message)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def answer(self) -> dict[str, Any]:
        return {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}


class BadPersistedQuery(ValueError):
    """`extensions.persistedQuery` that is not APQ's: a 400 with this message."""


class PersistedQueries:
    """Documents by SHA-256 (hex), least recently used first out, in at most `max_bytes` of
    document text (0: none kept, APQ not supported)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._documents)

    def document(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The document a request runs: `query` itself when it carries no persisted query;
        else the one kept for its hash (or `query`, checked against the hash and kept).
        Raises PersistedQueryError or BadPersistedQuery."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query
        digest = _hash_of(persisted)
        if not self.max_bytes:
            raise PersistedQueryError(*NOT_SUPPORTED)
        if query is None:
            known = self._documents.get(digest)
            if known is None:
                raise PersistedQueryError(*NOT_FOUND)
            self._documents.move_to_end(digest)
            return known
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise BadPersistedQuery("provided sha does not match query")
        self._keep(digest, query)
        return query

    def _keep(self, digest: str, query: str) -> None:
        size = len(query.encode())
        if size > self.max_bytes // 4:
            return  # one document may not push out most of the others
        old = self._documents.pop(digest, None)
        self._size += size - (len(old.encode()) if old is not None else 0)
        self._documents[digest] = query
        while self._size > self.max_bytes:
            _, evicted = self._documents.popitem(last=False)
            self._size -= len(evicted.encode())


def _hash_of(persisted: object) -> str:
    if not isinstance(persisted, dict):
        raise BadPersistedQuery("extensions.persistedQuery must be an object: "
                                '{"version": 1, "sha256Hash": "…"}')
    if persisted.get("version") != 1:
        raise BadPersistedQuery("Unsupported persisted query version: only version 1 is served")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64 or not _HEX.issuperset(digest.lower()):
        raise BadPersistedQuery("extensions.persistedQuery.sha256Hash must be the document's "
                                "SHA-256 in 64 hex digits")
    return digest.lower()

"""Stored documents into domain objects, tolerantly: a document that cannot be read is skipped.

The store holds what other versions of the gateway, other tools and past bugs wrote, not only
what this version writes. Each repository turns a document into a domain object through one
converter that checks what the domain needs (the annotations of `gateway.domain`, validated with
pydantic: times in range, ids that are strings, known enum values, JSON contents…), and reads
through `read` here. A document that fails is skipped rather than failing the list, page,
subscription, feed or worker that met it: a warning names the collection, the `_id` and the
fields at fault (never their values, which may be secrets) once per document and process, and
later meetings of the same document are logged at DEBUG.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

log = logging.getLogger(__name__)

T = TypeVar("T")
# How many unreadable documents a process remembers having warned about (oldest forgotten first).
WARNED_MAX = 10_000
_warned: OrderedDict[tuple[str, str], None] = OrderedDict()


class Malformed(ValueError):
    """Raised by a converter for what annotations do not say; the message names the field, never
    its value."""


class Unreadable(Exception):
    """A stored document that cannot become a domain object."""

    def __init__(self, collection: str, doc_id: Any, reason: str) -> None:
        self.collection = collection
        self.doc_id = doc_id
        self.reason = reason
        super().__init__(f"the {collection} document {_shown(doc_id)} cannot be read: {reason}")


@cache
def adapter(kind: Any) -> TypeAdapter:
    """The validator of a domain type (built once per type)."""
    return TypeAdapter(kind)


def validate(kind: type[T], values: Mapping[str, Any]) -> T:
    """`kind` from `values` as its annotations demand (ValidationError otherwise)."""
    return adapter(kind).validate_python(values)  # type: ignore[arg-type]  # types hash


def convert(collection: str, doc: Mapping[str, Any], to: Callable[[Mapping[str, Any]], T]) -> T:
    """`to(doc)`, or `Unreadable` (warned about) when the document cannot be converted."""
    try:
        return to(doc)
    # What a converter raises for a document it cannot read (pydantic's ValidationError and
    # Malformed are ValueErrors): the document is what is wrong.
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        doc_id = doc.get("_id") if isinstance(doc, Mapping) else None
        unreadable = Unreadable(collection, doc_id, reason(exc))
        _warn(unreadable)
        raise unreadable from None


def read(collection: str, doc: Mapping[str, Any] | None,
         to: Callable[[Mapping[str, Any]], T]) -> T | None:
    """The domain object a document holds; None for no document or one that cannot be read."""
    if doc is None:
        return None
    try:
        return convert(collection, doc, to)
    except Unreadable:
        return None


def read_all(collection: str, docs: Iterable[Mapping[str, Any]],
             to: Callable[[Mapping[str, Any]], T]) -> list[T]:
    """The documents that can be read, in order; the others skipped."""
    return [item for doc in docs if (item := read(collection, doc, to)) is not None]


def reason(exc: Exception) -> str:
    """What is wrong, by field, without the values (a stored value may be a secret)."""
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(part) for part in error["loc"]) or "document"
            parts.append(f"{where}: {error['msg']}")
        shown = "; ".join(parts[:5])
        return shown + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
    if isinstance(exc, Malformed):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"{exc.args[0] if exc.args else 'a field'}: missing"
    return f"{type(exc).__name__} while reading it"


def _shown(doc_id: Any) -> str:
    text = repr(doc_id)
    return text if len(text) <= 100 else text[:97] + "..."


def _warn(unreadable: Unreadable) -> None:
    key = (unreadable.collection, _shown(unreadable.doc_id))
    if key in _warned:
        _warned.move_to_end(key)
        log.debug("skipped again: %s", unreadable)
        return
    _warned[key] = None
    if len(_warned) > WARNED_MAX:
        _warned.popitem(last=False)
    log.warning("skipped a stored document: %s", unreadable)

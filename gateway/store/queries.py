"""Query shapes that both MongoDB and nx-27017 answer from an index (see store/mongo.py)."""

from __future__ import annotations

from typing import Any


def eq(value: Any) -> dict[str, Any]:
    """Equality on a field other than `_id`. nx-27017 reads a bare value as "equal, or an array
    holding it", a condition no index serves; `$eq` means the same on both servers for the
    scalar fields queried here, and is served by the index."""
    return {"$eq": value}


async def count(collection, query: dict[str, Any]) -> int:
    """How many documents match, by the `count` command: both servers count from an index that
    serves `query` (`count_documents` is an aggregation, which nx-27017 runs in Python over
    every document of the collection)."""
    answer = await collection.database.command("count", collection.name, query=query)
    return int(answer.get("n", 0))

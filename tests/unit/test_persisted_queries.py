"""The persisted queries' store: bounded in bytes, least recently used let go first."""

from __future__ import annotations

import hashlib

import pytest

from gateway.graphql.persisted import BadPersistedQuery, PersistedQueries, PersistedQueryError


def ext(query: str) -> dict:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def test_documents_are_kept_within_the_bound_least_recently_used_out():
    store = PersistedQueries(max_bytes=400)
    queries = [f"{{ tags {{ id }} }} # {n:03} " + "x" * 70 for n in range(10)]  # 90 bytes each
    for query in queries[:4]:
        assert store.document(query, ext(query)) == query
    assert store.document(None, ext(queries[0])) == queries[0]  # used: kept longest now
    store.document(queries[4], ext(queries[4]))  # 450 bytes: one must go, the least recent
    assert len(store) == 4
    with pytest.raises(PersistedQueryError) as missing:
        store.document(None, ext(queries[1]))
    assert missing.value.answer()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    for query in (queries[0], queries[2], queries[3], queries[4]):
        assert store.document(None, ext(query)) == query
    for query in queries:
        store.document(query, ext(query))
    assert len(store) == 4 and store._size <= 400


def test_a_document_too_large_for_a_quarter_of_the_room_runs_but_is_not_kept():
    store = PersistedQueries(max_bytes=400)
    big = "{ tags { id } }" + " " * 200
    assert store.document(big, ext(big)) == big
    assert len(store) == 0


def test_no_persisted_query_leaves_the_request_alone_and_checks_the_rest():
    store = PersistedQueries(max_bytes=400)
    assert store.document("{ tags { id } }", None) == "{ tags { id } }"
    assert store.document("{ tags { id } }", {"other": 1}) == "{ tags { id } }"
    with pytest.raises(BadPersistedQuery, match="does not match"):
        store.document("{ a }", ext("{ b }"))
    upper = {"persistedQuery": {"version": 1, "sha256Hash": ext("{ a }")["persistedQuery"][
        "sha256Hash"].upper()}}
    assert store.document("{ a }", upper) == "{ a }"
    assert store.document(None, ext("{ a }")) == "{ a }"

"""Automatic persisted queries (Apollo's APQ) against a real gateway, on GET and POST."""

from __future__ import annotations

import hashlib
import json

import httpx

QUERY = "query Tags { tags { id name } }"


def sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted(query: str, version: int = 1) -> dict:
    return {"persistedQuery": {"version": version, "sha256Hash": sha(query)}}


def get(gw, **params: object) -> httpx.Response:
    return gw.http.get("/graphql", params={
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in params.items()}, headers={"Accept": "*/*"})


def test_a_hash_is_unknown_until_sent_with_its_document(shared_gateway):
    gw = shared_gateway
    query = f"query Unknown{sha('x')[:8]} {{ tags {{ id }} }}"  # a document no one sent yet
    for answer in (gw.http.post("/graphql", json={"extensions": persisted(query)}),
                   get(gw, extensions=persisted(query))):
        assert answer.status_code == 200
        assert answer.json() == {"errors": [{"message": "PersistedQueryNotFound", "extensions": {
            "code": "PERSISTED_QUERY_NOT_FOUND"}}]}
    registered = gw.http.post("/graphql", json={"query": query, "extensions": persisted(query)})
    assert registered.status_code == 200 and registered.json() == {"data": {"tags": []}}
    by_post = gw.http.post("/graphql", json={"extensions": persisted(query)})
    by_get = get(gw, extensions=persisted(query))
    assert by_post.json() == by_get.json() == {"data": {"tags": []}}
    assert by_get.headers["content-type"].startswith("application/json")  # not GraphiQL


def test_variables_and_operation_names_go_with_the_hash(shared_gateway):
    gw = shared_gateway
    query = ("query One($first: Int!) { conversations(first: $first) { totalCount } } "
             "query Two { tags { id } }")
    assert gw.http.post("/graphql", json={"query": query, "extensions": persisted(query),
                                          "operationName": "Two"}).json() == {"data": {"tags": []}}
    answer = get(gw, extensions=persisted(query), operationName="One", variables={"first": 1})
    assert answer.json() == {"data": {"conversations": {"totalCount": 0}}}


def test_a_mutation_by_hash_goes_by_post_only(shared_gateway):
    gw = shared_gateway
    mutation = 'mutation { createTag(input: {name: "apq", color: RED}) { name } }'
    created = gw.http.post("/graphql", json={"query": mutation, "extensions": persisted(mutation)})
    assert created.json() == {"data": {"createTag": {"name": "apq"}}}
    refused = get(gw, extensions=persisted(mutation))
    assert refused.status_code == 400 and "GET" in refused.json()["message"]


def test_a_wrong_hash_or_version_is_a_bad_request(shared_gateway):
    gw = shared_gateway
    wrong = gw.http.post("/graphql", json={"query": QUERY, "extensions": persisted("other")})
    assert wrong.status_code == 400
    assert wrong.json()["message"] == "provided sha does not match query"
    for extensions, expected in (
            (persisted(QUERY, version=2), "Unsupported persisted query version"),
            ({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}, "64 hex digits"),
            ({"persistedQuery": "yes"}, "must be an object")):
        answer = gw.http.post("/graphql", json={"extensions": extensions})
        assert answer.status_code == 400 and expected in answer.json()["message"]
        assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    log = gw.log()
    assert "Traceback" not in log and " ERROR " not in log


def test_with_no_room_for_documents_apq_is_not_supported(start_gateway):
    gw = start_gateway(PERSISTED_QUERIES_MB="0")
    for body in ({"extensions": persisted(QUERY)},
                 {"query": QUERY, "extensions": persisted(QUERY)}):
        answer = gw.http.post("/graphql", json=body)
        assert answer.status_code == 200
        assert answer.json()["errors"][0] == {
            "message": "PersistedQueryNotSupported",
            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}}
    assert gw.http.post("/graphql", json={"query": QUERY}).json() == {"data": {"tags": []}}


def test_a_persisted_subscription_streams_over_http(shared_gateway):
    gw = shared_gateway
    subscription = "subscription { channelUpdated { id } }"
    headers = {"Accept": 'multipart/mixed;subscriptionSpec="1.0",application/json'}
    missing = gw.http.post("/graphql", json={"extensions": persisted(subscription)},
                           headers=headers)
    assert missing.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    for body in ({"query": subscription, "extensions": persisted(subscription)},
                 {"extensions": persisted(subscription)}):
        with gw.http.stream("POST", "/graphql", json=body, headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("multipart/mixed")
            first = next(stream.iter_raw())
            assert b"{}" in first  # the opening heartbeat

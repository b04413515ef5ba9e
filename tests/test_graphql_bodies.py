"""Bad requests to /graphql get 400 with a message, as the REST routes do, never a 500.

The same bodies go to a REST route for comparison: one rule (gateway.validation.load_json) answers
both. A subscription asked for over HTTP is told where the websocket is.
"""

from __future__ import annotations

import json
import time

import pytest

SUBSCRIPTION = "subscription { messageCreated { id } }"
TWO_OPERATIONS = "query Q { tags { id } } subscription S { messageCreated { id } }"
DEEP = b'{"query": "{ tags { id } }", "variables": {"v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
BAD_BODIES = {
    "invalid UTF-8": (b'{"query": "{ tags { id } }", "variables": {"v": "\xff\xfe"}}', "UTF-8"),
    "100,000 levels deep": (DEEP, "nested more than 64 levels deep"),
    "70 levels deep": (b'{"query": "{ tags { id } }", "variables": {"v": '
                       + b"[" * 70 + b"]" * 70 + b"}}", "nested more than 64 levels deep"),
    "not JSON": (b'{"query": ', "not valid JSON"),
    "NaN": (b'{"query": "{ tags { id } }", "variables": {"v": NaN}}', "not finite"),
    "a huge integer": (b'{"query": "{ tags { id } }", "variables": {"v": ' + b"9" * 30 + b"}}",
                       "64-bit"),
    "null": (b"null", "must be a JSON object"),
    "a string": (b'"{ tags { id } }"', "must be a JSON object"),
    "a number": (b"5", "must be a JSON object"),
    "empty": (b"", "not valid JSON"),
}


def post(gw, path: str, body: bytes):
    return gw.http.post(path, content=body, headers={"Content-Type": "application/json"})


def assert_refused(response, expected: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert expected in answer["message"], answer
    assert answer["errors"] == [{"message": answer["message"],
                                 "extensions": {"code": "BAD_REQUEST"}}]


@pytest.mark.parametrize("name", BAD_BODIES)
def test_a_bad_body_gets_400_with_a_message_as_on_rest(shared_gateway, name):
    gateway = shared_gateway
    body, expected = BAD_BODIES[name]
    for _ in range(2):  # the second time too: a refusal is not kept by the query cache
        answer = post(gateway, "/graphql", body)
        assert_refused(answer, expected)
        assert answer.headers.get("x-query-cache") != "hit"
    if name not in ("null", "a string", "a number", "empty"):  # REST takes those differently
        rest = post(gateway, "/tags.list", body)
        assert rest.status_code == 400 and expected in rest.json()["message"]
    assert post(gateway, "/graphql", b'{"query": "{ tags { id } }"}').json() == \
        {"data": {"tags": []}}
    time.sleep(0.2)
    log = gateway.log()
    assert "Traceback" not in log and " ERROR " not in log


def test_get_variables_are_checked_the_same_way(gateway):
    for variables, expected in (("[" * 3000 + "]" * 3000, "nested more than 64 levels deep"),
                                ('{"v": NaN}', "not finite"), ("{oops", "not valid JSON")):
        answer = gateway.http.get("/graphql", params={"query": "{ tags { id } }",
                                                      "variables": variables})
        assert_refused(answer, expected)
    fine = gateway.http.get("/graphql", params={"query": "{ tags { id } }",
                                                "variables": '{"n": 1}'})
    assert fine.status_code == 200 and fine.json() == {"data": {"tags": []}}


def test_a_subscription_over_http_is_told_to_use_a_websocket(gateway):
    where = f"ws://127.0.0.1:{gateway.port}/graphql"
    answers = [
        gateway.http.post("/graphql", json={"query": SUBSCRIPTION}),
        gateway.http.get("/graphql", params={"query": SUBSCRIPTION}),
        # the operation chosen is a subscription
        gateway.http.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "S"}),
    ]
    for answer in answers:
        assert_refused(answer, "subscriptions are served over websockets")
        message = answer.json()["message"]
        assert where in message and "graphql-transport-ws" in message and "graphql-ws" in message
    query = gateway.http.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "Q"})
    assert query.status_code == 200 and query.json() == {"data": {"tags": []}}
    time.sleep(0.2)
    log = gateway.log()
    assert "Traceback" not in log and " ERROR " not in log


def test_strawberrys_own_refusals_are_json_too(gateway):
    batch = post(gateway, "/graphql", json.dumps([{"query": "{ tags { id } }"}]).encode())
    assert_refused(batch, "Batching is not enabled")
    text = gateway.http.post("/graphql", content=b"{ tags { id } }",
                             headers={"Content-Type": "text/plain"})
    assert text.status_code in (400, 415)
    assert text.json()["message"]

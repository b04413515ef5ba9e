"""Operations over both GraphQL websocket protocols that are not plain subscriptions: a document
that does not parse is answered with its syntax error, and the legacy protocol runs queries and
mutations (as subscriptions-transport-ws clients send them) instead of failing them."""

from __future__ import annotations

import pytest

from tests.ws import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, GraphQLSocket


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("document", ["subscription {", "{ channels { id }", "subscription x y"])
def test_a_document_that_does_not_parse_gets_its_syntax_error_and_the_socket_goes_on(
        shared_gateway, protocol, document):
    with GraphQLSocket(shared_gateway.url, protocol) as ws:
        assert ws.init()["type"] == "connection_ack"
        ws.subscribe("bad", document)
        answer = ws.receive()
        assert answer["type"] == "error" and answer["id"] == "bad", answer
        errors = answer["payload"] if protocol == TRANSPORT_WS else [answer["payload"]]
        assert errors[0]["message"].startswith("Syntax Error:")
        assert errors[0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
        assert errors[0]["locations"]
        # The socket is still good for the next operation.
        ws.subscribe("good", "{ channels { id } }")
        assert ws.next("good") == {"data": {"channels": []}}


def test_the_legacy_protocol_runs_queries_and_mutations(shared_gateway):
    with GraphQLSocket(shared_gateway.url, LEGACY_WS) as ws:
        assert ws.init()["type"] == "connection_ack"
        ws.subscribe("q", "{ tags { name } }")
        before = ws.next("q")["data"]["tags"]
        assert ws.receive() == {"type": "complete", "id": "q"}

        ws.subscribe("m", 'mutation { createTag(input: {name: "over-legacy-ws"}) { name } }')
        assert ws.next("m") == {"data": {"createTag": {"name": "over-legacy-ws"}}}
        assert ws.receive() == {"type": "complete", "id": "m"}

        ws.subscribe("again", "{ tags { name } }")
        after = ws.next("again")["data"]["tags"]
        assert ws.receive() == {"type": "complete", "id": "again"}
        assert {"name": "over-legacy-ws"} in after and len(after) == len(before) + 1

        # A request error stays the client's to fix, with its code (not "Unexpected error.").
        ws.subscribe("v", "{ nope }")
        payload = ws.next("v")
        assert payload["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

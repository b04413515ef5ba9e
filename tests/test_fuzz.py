"""Generated input (hypothesis): whatever arrives, the answer is a 2xx or a 4xx with a message."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.domain import is_graph_id, now_ms
from gateway.errors import InvalidInput
from gateway import rest
from gateway.sources.facebook.webhook import EARLIEST_MS, LATEST_AHEAD_MS, parse_envelope
from tests import payloads
from tests.conftest import connect_page

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats() | st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)
FIELDS = ["page_id", "page_token", "name", "image_url", "channel_id", "source", "cursor",
          "page_size", "conversation_id", "message", "messaging_type", "tag", "tag_id", "state",
          "display_name", "message_id", "suggestions", "subject", "id", "data", "filters",
          "auth_token", "color", "url", "events", "headers", "signature_key"]
# Bodies shaped like the routes' own: known field names with any values, plus stray fields.
BODIES = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSON, max_size=6) | JSON


def messaging_event():
    return st.fixed_dictionaries({}, optional={
        "sender": st.fixed_dictionaries({}, optional={"id": JSON}),
        "recipient": st.fixed_dictionaries({}, optional={"id": JSON}),
        "timestamp": JSON,
        "message": st.fixed_dictionaries({}, optional={
            "mid": JSON, "text": JSON, "is_echo": JSON, "app_id": JSON, "metadata": JSON,
            "attachments": JSON}),
        "postback": JSON, "reaction": JSON, "delivery": JSON, "read": JSON, "optin": JSON,
    })


ENVELOPES = st.fixed_dictionaries({"object": st.sampled_from(["page", "page", "user"]) | JSON},
                                  optional={"entry": st.lists(st.fixed_dictionaries(
                                      {"id": st.sampled_from(["1", 2]) | JSON},
                                      optional={"messaging": st.lists(messaging_event(), max_size=3)
                                                | JSON, "standby": JSON}), max_size=3) | JSON})


@settings(max_examples=2000, deadline=None)
@given(body=ENVELOPES | JSON)
def test_the_webhook_parser_refuses_or_reads_never_crashes(body):
    raw = json.dumps(body).encode()
    try:
        events = parse_envelope(raw)
    except InvalidInput as exc:
        assert exc.message
        return
    for event in events:
        assert event.key
        if event.invalid:  # kept raw in the events log, never applied
            continue
        # What the edge promises of every event it lets through to be applied:
        assert is_graph_id(event.page_id) and event.raw is not None
        assert EARLIEST_MS <= event.timestamp <= now_ms() + LATEST_AHEAD_MS
        assert event.contact_id is None or is_graph_id(event.contact_id)
        assert event.watermark is None or EARLIEST_MS <= event.watermark


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_the_webhook_parser_survives_any_bytes(raw):
    try:
        parse_envelope(raw)
    except InvalidInput:
        pass


def test_no_route_answers_5xx_to_generated_bodies(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "4242", "seed")))
    paths = [route.path for route in rest.routes]
    seen: dict[int, int] = {}

    @settings(max_examples=2500, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(path=st.sampled_from(paths), body=BODIES)
    def check(path, body):
        response = gateway.http.post(path, content=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (path, body, response.text)
        if response.status_code >= 400:
            assert response.json()["message"]

    check()
    assert sum(seen.values()) >= 2500 and any(code < 300 for code in seen)
    print(f"REST fuzz: {sum(seen.values())} requests, status counts {dict(sorted(seen.items()))}")


def test_the_webhook_never_answers_5xx_to_signed_generated_bodies(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    seen: dict[int, int] = {}

    @settings(max_examples=1000, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=ENVELOPES.map(lambda e: {**e, "entry": [{"id": page, "messaging": e["entry"]}]}
                              if isinstance(e.get("entry"), list) else e) | ENVELOPES)
    @example(body={"object": "page", "entry": [{"id": page, "messaging": [{"x": float("inf")}]}]})
    @example(body={"object": "page", "entry": [{"id": page, "messaging": [{"x": float("nan")}]}]})
    def check(body):
        response = gateway.webhook(body)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (200, 400), (body, response.text)

    check()
    print(f"webhook fuzz: {sum(seen.values())} signed posts, status counts {dict(sorted(seen.items()))}")

"""Pure pieces: the signature, event parsing and cursors (settings: test_config.py)."""

from __future__ import annotations

import json

import pytest

from gateway.domain import EventKind, iso
from gateway.errors import InvalidInput
from gateway.sources.facebook import signature
from gateway.sources.facebook.webhook import parse_envelope, parse_event
from gateway.store.mongo import decode_cursor, encode_cursor


def test_signature_matches_metas_scheme():
    body = b'{"object":"page"}'
    header = signature.sign("secret", body)
    assert header == "sha256=" + __import__("hmac").new(b"secret", body, "sha256").hexdigest()
    assert signature.is_valid("secret", body, header)
    assert not signature.is_valid("secret", body + b" ", header)
    assert not signature.is_valid("other", body, header)
    assert not signature.is_valid("secret", body, header.replace("sha256=", "sha1="))
    assert not signature.is_valid("", body, header)


def test_event_key_ignores_key_order():
    a = {"sender": {"id": "1"}, "recipient": {"id": "2"}, "timestamp": 5, "message": {"mid": "m", "text": "x"}}
    b = json.loads(json.dumps(dict(reversed(list(a.items())))))
    assert parse_event("2", a).key == parse_event("2", b).key
    assert parse_event("2", a).key != parse_event("3", a).key


@pytest.mark.parametrize("raw, kind", [
    ({"sender": {"id": "1"}, "recipient": {"id": "2"}, "message": {"mid": "m", "text": "x"}}, EventKind.MESSAGE),
    ({"sender": {"id": "2"}, "recipient": {"id": "1"}, "message": {"mid": "m", "is_echo": True}}, EventKind.ECHO),
    ({"sender": {"id": "1"}, "recipient": {"id": "2"}, "postback": {"payload": "P"}}, EventKind.POSTBACK),
    ({"sender": {"id": "1"}, "reaction": {"mid": "m", "action": "react", "emoji": "x"}}, EventKind.REACTION),
    ({"sender": {"id": "1"}, "delivery": {"watermark": 1700000000000}}, EventKind.DELIVERY),
    ({"sender": {"id": "1"}, "read": {"watermark": 1700000000000}}, EventKind.READ),
    ({"sender": {"id": "1"}, "optin": {"ref": "x"}}, EventKind.OPTIN),
    ({"sender": {"id": "1"}, "account_linking": {"status": "unlinked"}}, EventKind.UNKNOWN),
    ({"message": {"mid": "m", "text": "no sender"}}, EventKind.UNKNOWN),
    ({"sender": {"id": "1"}, "reaction": {"mid": "m", "action": "wave"}}, EventKind.UNKNOWN),
])
def test_event_kinds(raw, kind):
    assert parse_event("2", raw).kind is kind


@pytest.mark.parametrize("body, message", [
    (b"not json", "not valid JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"object": "user", "entry": []}', '"object": "page"'),
    (b'{"object": "page", "entry": {}}', "entry must be a list"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": 99999999999999999999}]}]}', "64-bit"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": Infinity}]}]}', "not finite"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": NaN}]}]}', "not finite"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": 1e400}]}]}', "not finite"),
])
def test_bad_envelopes_are_refused_with_a_reason(body, message):
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_envelope(body)


@pytest.mark.parametrize("entry, reason", [
    ({"messaging": []}, "entry.id must be a Graph API id"),
    ({"id": "../x", "messaging": []}, "entry.id must be a Graph API id"),
    ({"id": "1", "messaging": {}}, "entry.messaging must be a list"),
    ({"id": "1", "standby": "x"}, "entry.standby must be a list"),
    (7, "the entry must be a JSON object"),
])
def test_a_broken_entry_is_kept_whole_as_one_invalid_event(entry, reason):
    good = {"sender": {"id": "1"}, "message": {"mid": "m", "text": "x"}}
    body = {"object": "page", "entry": [entry, {"id": "2", "messaging": [good]}]}
    broken, fine = parse_envelope(json.dumps(body).encode())
    assert broken.invalid.startswith(reason) and broken.raw == entry
    assert fine.invalid is None and fine.kind is EventKind.MESSAGE


NOW = 1_800_000_000_000


@pytest.mark.parametrize("changes, reason", [
    ({"timestamp": 10**16}, "timestamp must be a time between 2004-01-01 and a day from now"),
    ({"timestamp": 1e20}, "timestamp must be a time between"),
    ({"timestamp": -5}, "timestamp must be a time between"),
    ({"timestamp": NOW + 25 * 3600 * 1000}, "timestamp must be a time between"),
    ({"timestamp": 1_000_000_000_000}, "timestamp must be a time between"),  # 2001
    ({"timestamp": 1.5}, "timestamp must be an integer"),
    ({"timestamp": "1700000000000"}, "timestamp must be an integer"),
    ({"timestamp": True}, "timestamp must be an integer"),
    ({"sender": {"id": "http://127.0.0.1:1/stolen"}}, "sender.id must be a Graph API id"),
    ({"sender": {"id": "12a"}}, "sender.id"),
    ({"sender": {"id": "1" * 33}}, "sender.id"),
    ({"sender": {"id": "١٢"}}, "sender.id"),  # digits, but not ASCII ones
    ({"sender": {"id": -1}}, "sender.id"),
    ({"sender": {"id": True}}, "sender.id"),
    ({"sender": "1"}, "sender must be an object"),
    ({"recipient": {"id": "../1"}}, "recipient.id"),
    ({"message": {"mid": 5, "text": "x"}}, "message.mid must be a string"),
    ({"message": {"mid": "m" * 513}}, "message.mid must be a string of at most 512"),
])
def test_an_event_failing_a_check_is_invalid_with_a_reason(changes, reason):
    raw = {"sender": {"id": "1"}, "recipient": {"id": "2"}, "timestamp": NOW,
           "message": {"mid": "m", "text": "x"}, **changes}
    event = parse_event("2", raw, now=NOW)
    assert event.invalid and event.invalid.startswith(reason)
    assert event.kind is EventKind.UNKNOWN and event.raw == raw and event.timestamp == NOW
    assert "stolen" not in event.invalid and "1e20" not in event.invalid  # no content quoted


@pytest.mark.parametrize("raw, reason", [
    ({"sender": {"id": "1"}, "read": {"watermark": 10**16}}, "read.watermark must be a time"),
    ({"sender": {"id": "1"}, "delivery": {"watermark": -1}}, "delivery.watermark must be a time"),
    ({"sender": {"id": "1"}, "delivery": {"mids": "m"}}, "delivery.mids must be a list"),
    ({"sender": {"id": "1"}, "delivery": {"mids": [1]}}, "delivery.mids must be a string"),
    ({"sender": {"id": "1"}, "reaction": {"mid": "m", "action": "react", "emoji": "x" * 101}},
     "reaction.emoji"),
    ({"sender": {"id": "1"}, "reaction": {"mid": ["m"], "action": "react"}}, "reaction.mid"),
    ({"sender": {"id": "2"}, "recipient": {"id": "1"},
      "message": {"mid": "m", "is_echo": True, "app_id": "x1"}}, "message.app_id"),
    ({"sender": {"id": "2"}, "recipient": {"id": "1"},
      "message": {"mid": "m", "is_echo": True, "metadata": "x" * 1001}}, "message.metadata"),
    ({"sender": {"id": "1"}, "postback": {"mid": {"x": 1}}}, "postback.mid"),
    ([1, 2], "the event must be a JSON object"),
])
def test_every_field_the_gateway_uses_is_checked(raw, reason):
    event = parse_event("2", raw, now=NOW)
    assert event.invalid and event.invalid.startswith(reason)


def test_integral_floats_and_a_missing_timestamp_are_fine():
    sent = {"sender": {"id": 1}, "recipient": {"id": 2}, "timestamp": 1.7e12,
            "message": {"mid": "m", "text": "x"}}
    event = parse_event("2", sent, now=NOW)
    assert (event.invalid, event.kind, event.timestamp, event.contact_id) == \
        (None, EventKind.MESSAGE, 1_700_000_000_000, "1")
    untimed = parse_event("2", {"sender": {"id": "1"}, "optin": {"ref": "x"}}, now=NOW)
    assert untimed.invalid is None and untimed.timestamp == NOW  # the time it was received


def test_cursors_round_trip_and_garbage_is_refused():
    assert decode_cursor(encode_cursor(1700000000123, "abc-def")) == (1700000000123, "abc-def")
    with pytest.raises(InvalidInput):
        decode_cursor("!!!not-a-cursor")


def test_iso_times_have_milliseconds_and_z():
    assert iso(1550050753811) == "2019-02-13T09:39:13.811Z"
    assert iso(0) == "1970-01-01T00:00:00.000Z"

"""Pure pieces: settings, the signature, event parsing and cursors."""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError, Settings
from gateway.domain import EventKind, iso
from gateway.errors import InvalidInput
from gateway.sources.facebook import signature
from gateway.sources.facebook.webhook import parse_envelope, parse_event
from gateway.store.mongo import decode_cursor, encode_cursor


def test_settings_defaults_and_overrides():
    assert Settings.from_env({}).graph_api_url == "https://graph.facebook.com/v21.0"
    settings = Settings.from_env({"PORT": "9000", "FACEBOOK_GRAPH_API_URL": "http://x/v1/",
                                  "SEND_MAX_ATTEMPTS": "3"})
    assert (settings.port, settings.graph_api_url, settings.send_max_attempts) == (9000, "http://x/v1", 3)


@pytest.mark.parametrize("env, message", [
    ({"PORT": "x"}, "PORT must be a int"),
    ({"SEND_MAX_ATTEMPTS": "0"}, "SEND_MAX_ATTEMPTS must be at least 1"),
    ({"MONGODB_DATABASE": "a-b"}, "MONGODB_DATABASE may hold only"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be"),
])
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_settings_repr_and_store_description_hide_secrets():
    settings = Settings.from_env({"FACEBOOK_APP_SECRET": "topsecret", "SYSTEM_TOKEN": "tok",
                                  "MONGODB_URL": "mongodb://user:pw@db.example:27017/?replicaSet=rs0"})
    text = repr(settings) + settings.store_description
    for secret in ("topsecret", "tok", "pw", "user"):
        assert secret not in text
    assert "db.example:27017" in settings.store_description


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
    ({"sender": {"id": "1"}, "delivery": {"watermark": 5}}, EventKind.DELIVERY),
    ({"sender": {"id": "1"}, "read": {"watermark": 5}}, EventKind.READ),
    ({"sender": {"id": "1"}, "optin": {"ref": "x"}}, EventKind.UNKNOWN),
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
    (b'{"object": "page", "entry": [{"messaging": []}]}', "entry[0].id"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [1]}]}', "entry[0].messaging[0]"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": 99999999999999999999}]}]}', "64-bit"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": Infinity}]}]}', "not finite"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": NaN}]}]}', "not finite"),
    (b'{"object": "page", "entry": [{"id": "1", "messaging": [{"x": 1e400}]}]}', "not finite"),
])
def test_bad_envelopes_are_refused_with_a_reason(body, message):
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_envelope(body)


def test_cursors_round_trip_and_garbage_is_refused():
    assert decode_cursor(encode_cursor(1700000000123, "abc-def")) == (1700000000123, "abc-def")
    with pytest.raises(InvalidInput):
        decode_cursor("!!!not-a-cursor")


def test_iso_times_have_milliseconds_and_z():
    assert iso(1550050753811) == "2019-02-13T09:39:13.811Z"
    assert iso(0) == "1970-01-01T00:00:00.000Z"

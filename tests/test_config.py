"""Settings: every variable's default, its parsing, and an error that names it."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from gateway.config import DEFAULT_INBOX_DIR, FLAG_WORDS, ConfigError, Settings

DEFAULTS = {
    "host": "127.0.0.1", "port": 8000, "facebook_app_id": "", "facebook_app_secret": "",
    "facebook_webhook_secret": "", "graph_api_url": "https://graph.facebook.com/v21.0",
    "graph_api_timeout": 10.0, "mongodb_url": "", "mongodb_database": "messenger_gateway",
    "data_dir": "./data", "system_token": "", "send_max_attempts": 6, "retry_base_seconds": 2.0,
    "retry_max_seconds": 300.0, "worker_poll_seconds": 1.0, "log_level": "INFO",
    "graphql_max_depth": 10, "graphql_max_tokens": 2000, "graphql_max_aliases": 30,
    "graphql_cache_size": 256, "subscription_queue_size": 1000, "subscription_multiplex": True,
    "ws_max_subscriptions": 100, "inbox_dir": DEFAULT_INBOX_DIR, "log_format": "text",
    "max_body_bytes": 1048576, "ws_max_message_bytes": 65536, "store_timeout_seconds": 5.0,
    "webhook_timeout_seconds": 10.0, "webhook_retry_seconds": 86400.0, "query_cache_mb": 16.0,
    "ws_init_timeout_seconds": 10.0, "ws_max_connections": 10000, "subscription_queue_mb": 4.0,
    "allowed_origins": (), "allow_open_api": False, "webhook_allow_private": False,
    "store_measure_work": False, "token_encryption_key": "",
    "send_concurrency": 16, "send_rate_per_page": 250.0, "send_media_rate_per_page": 8.0,
    "send_at_once": True, "facebook_max_body_bytes": 8388608, "webhook_apply_wait_ms": 500,
    "webhook_apply_queue_events": 5000, "forwarded_allow_ips": "127.0.0.1",
    "mark_seen_on_read": False, "attachment_max_bytes": 26214400, "http_max_subscriptions": 1000,
    "persisted_queries_mb": 2.0,
}

KEY = Fernet.generate_key().decode()
# Every variable set to a value other than its default, and what it becomes.
FULL = {
    "HOST": ("0.0.0.0", "0.0.0.0"),
    "PORT": ("9000", 9000),
    "FACEBOOK_APP_ID": ("123", "123"),
    "FACEBOOK_APP_SECRET": ("app-secret", "app-secret"),
    "FACEBOOK_WEBHOOK_SECRET": ("hook-secret", "hook-secret"),
    "FACEBOOK_GRAPH_API_URL": ("http://127.0.0.1:9999/v1//", "http://127.0.0.1:9999/v1"),
    "GRAPH_API_TIMEOUT_SECONDS": ("2.5", 2.5),
    "MONGODB_URL": ("mongodb://u:db-password@db:27017/?replicaSet=rs0",
                    "mongodb://u:db-password@db:27017/?replicaSet=rs0"),
    "MONGODB_DATABASE": ("gw_2", "gw_2"),
    "DATA_DIR": ("/var/lib/gateway", "/var/lib/gateway"),
    "SYSTEM_TOKEN": ("system-token", "system-token"),
    "SEND_MAX_ATTEMPTS": ("3", 3),
    "SEND_CONCURRENCY": ("4", 4),
    "SEND_RATE_PER_PAGE": ("100", 100.0),
    "SEND_MEDIA_RATE_PER_PAGE": ("5", 5.0),
    "RETRY_BASE_SECONDS": ("0.5", 0.5),
    "RETRY_MAX_SECONDS": ("60", 60.0),
    "WORKER_POLL_SECONDS": ("0.25", 0.25),
    "LOG_LEVEL": ("warning", "WARNING"),
    "GRAPHQL_MAX_DEPTH": ("5", 5),
    "GRAPHQL_MAX_TOKENS": ("500", 500),
    "GRAPHQL_MAX_ALIASES": ("0", 0),
    "GRAPHQL_CACHE_SIZE": ("16", 16),
    "SUBSCRIPTION_QUEUE_SIZE": ("10", 10),
    "SUBSCRIPTION_MULTIPLEX": ("Off", False),
    "WS_MAX_SUBSCRIPTIONS": ("5", 5),
    "INBOX_DIR": ("/srv/inbox", "/srv/inbox"),
    "LOG_FORMAT": ("JSON", "json"),
    "MAX_BODY_BYTES": ("2048", 2048),
    "WS_MAX_MESSAGE_BYTES": ("1024", 1024),
    "STORE_TIMEOUT_SECONDS": ("0.5", 0.5),
    "WEBHOOK_TIMEOUT_SECONDS": ("3", 3.0),
    "WEBHOOK_RETRY_SECONDS": ("600", 600.0),
    "QUERY_CACHE_MB": ("0", 0.0),
    "WS_INIT_TIMEOUT_SECONDS": ("1.5", 1.5),
    "WS_MAX_CONNECTIONS": ("50", 50),
    "SUBSCRIPTION_QUEUE_MB": ("0.5", 0.5),
    "ALLOWED_ORIGINS": (" https://inbox.example.com/, http://127.0.0.1:5173,, ",
                        ("https://inbox.example.com", "http://127.0.0.1:5173")),
    "ALLOW_OPEN_API": ("yes", True),
    "WEBHOOK_ALLOW_PRIVATE": ("TRUE", True),
    "STORE_MEASURE_WORK": ("1", True),
    "TOKEN_ENCRYPTION_KEY": (KEY, KEY),
    "SEND_AT_ONCE": ("0", False),
    "FACEBOOK_MAX_BODY_BYTES": ("4096", 4096),
    "WEBHOOK_APPLY_WAIT_MS": ("0", 0),
    "WEBHOOK_APPLY_QUEUE_EVENTS": ("10", 10),
    "FORWARDED_ALLOW_IPS": (" 10.0.0.1, 172.30.0.0/24 ", "10.0.0.1,172.30.0.0/24"),
    "MARK_SEEN_ON_READ": ("1", True),
    "ATTACHMENT_MAX_BYTES": ("4096", 4096),
    "HTTP_MAX_SUBSCRIPTIONS": ("50", 50),
    "PERSISTED_QUERIES_MB": ("0", 0.0),
}
FIELDS = dict(zip(Settings.variables(), Settings.model_fields, strict=True))

# The lowest value each number takes, and one just below it.
RANGES = {
    "PORT": ("0", "-1"),
    "GRAPH_API_TIMEOUT_SECONDS": ("0.1", "0.09"),
    "SEND_MAX_ATTEMPTS": ("1", "0"),
    "SEND_CONCURRENCY": ("1", "0"),
    "SEND_RATE_PER_PAGE": ("0.1", "0"),
    "SEND_MEDIA_RATE_PER_PAGE": ("0.1", "0"),
    "RETRY_BASE_SECONDS": ("0.01", "0.009"),
    "RETRY_MAX_SECONDS": ("0.01", "0"),
    "WORKER_POLL_SECONDS": ("0.01", "-1"),
    "GRAPHQL_MAX_DEPTH": ("1", "0"),
    "GRAPHQL_MAX_TOKENS": ("1", "0"),
    "GRAPHQL_MAX_ALIASES": ("0", "-1"),
    "GRAPHQL_CACHE_SIZE": ("1", "0"),
    "SUBSCRIPTION_QUEUE_SIZE": ("1", "0"),
    "WS_MAX_SUBSCRIPTIONS": ("1", "0"),
    "MAX_BODY_BYTES": ("1024", "1023"),
    "WS_MAX_MESSAGE_BYTES": ("1024", "1023"),
    "STORE_TIMEOUT_SECONDS": ("0.1", "0.09"),
    "WEBHOOK_TIMEOUT_SECONDS": ("0.1", "0"),
    "WEBHOOK_RETRY_SECONDS": ("1", "0.99"),
    "QUERY_CACHE_MB": ("0", "-0.5"),
    "WS_INIT_TIMEOUT_SECONDS": ("0.1", "0.01"),
    "WS_MAX_CONNECTIONS": ("1", "0"),
    "SUBSCRIPTION_QUEUE_MB": ("0.01", "0.001"),
    "FACEBOOK_MAX_BODY_BYTES": ("1024", "1023"),
    "WEBHOOK_APPLY_WAIT_MS": ("0", "-1"),
    "WEBHOOK_APPLY_QUEUE_EVENTS": ("1", "0"),
    "ATTACHMENT_MAX_BYTES": ("1024", "1023"),
    "HTTP_MAX_SUBSCRIPTIONS": ("1", "0"),
    "PERSISTED_QUERIES_MB": ("0", "-0.5"),
}
INTEGERS = {"PORT", "SEND_MAX_ATTEMPTS", "SEND_CONCURRENCY", "GRAPHQL_MAX_DEPTH",
            "GRAPHQL_MAX_TOKENS", "GRAPHQL_MAX_ALIASES", "GRAPHQL_CACHE_SIZE", "SUBSCRIPTION_QUEUE_SIZE",
            "WS_MAX_SUBSCRIPTIONS", "MAX_BODY_BYTES", "WS_MAX_MESSAGE_BYTES", "WS_MAX_CONNECTIONS",
            "FACEBOOK_MAX_BODY_BYTES", "WEBHOOK_APPLY_WAIT_MS", "WEBHOOK_APPLY_QUEUE_EVENTS",
            "ATTACHMENT_MAX_BYTES", "HTTP_MAX_SUBSCRIPTIONS"}
FLAGS = ["SUBSCRIPTION_MULTIPLEX", "ALLOW_OPEN_API", "WEBHOOK_ALLOW_PRIVATE", "STORE_MEASURE_WORK",
         "SEND_AT_ONCE", "MARK_SEEN_ON_READ"]
# Any text is a valid value of these.
FREE_TEXT = {"HOST", "FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_WEBHOOK_SECRET",
             "FACEBOOK_GRAPH_API_URL", "MONGODB_URL", "DATA_DIR", "SYSTEM_TOKEN", "INBOX_DIR"}

# (variable, value, the whole message)
BAD = [
    *[(name, below, f"{name} must be at least {lowest}, got {below!r}")
      for name, (lowest, below) in RANGES.items()],
    *[(name, "1.5", f"{name} must be an integer, got '1.5'") for name in sorted(INTEGERS)],
    *[(name, "soon", f"{name} must be a number, got 'soon'")
      for name in sorted(set(RANGES) - INTEGERS)],
    # NaN is below every minimum (it compares false with all numbers).
    *[(name, "nan", f"{name} must be at least {lowest}, got 'nan'")
      for name, (lowest, _) in RANGES.items() if name not in INTEGERS],
    *[(name, word, f"{name} must be 1 or 0, got {word!r}")
      for name in FLAGS for word in ("maybe", "y", "t", "2")],
    ("PORT", "eighty", "PORT must be an integer, got 'eighty'"),
    ("MONGODB_DATABASE", "a-b", "MONGODB_DATABASE may hold only letters, digits and underscores"),
    ("MONGODB_DATABASE", "bé", "MONGODB_DATABASE may hold only letters, digits and underscores"),
    ("MONGODB_DATABASE", "a b", "MONGODB_DATABASE may hold only letters, digits and underscores"),
    ("LOG_LEVEL", "loud", "LOG_LEVEL must be 'DEBUG', 'INFO', 'WARNING' or 'ERROR', got 'LOUD'"),
    ("LOG_LEVEL", "critical",
     "LOG_LEVEL must be 'DEBUG', 'INFO', 'WARNING' or 'ERROR', got 'CRITICAL'"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT must be 'text' or 'json', got 'xml'"),
    *[("ALLOWED_ORIGINS", f"https://ok.example, {origin}",
       ("ALLOWED_ORIGINS must list origins such as https://inbox.example.com, comma-separated; "
        f"got {origin!r}"))
      for origin in ("inbox.example.com", "ftp://inbox.example.com", "https:",
                     "https://inbox.example.com/path", "*")],
    ("FORWARDED_ALLOW_IPS", "proxy.example",
     "FORWARDED_ALLOW_IPS must list IP addresses or networks (172.30.0.10, 172.30.0.0/24), "
     "comma-separated, or *; got 'proxy.example'"),
    ("TOKEN_ENCRYPTION_KEY", "not-a-key",
     ("TOKEN_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes); make one "
      "with: python -c 'from cryptography.fernet import Fernet; "
      "print(Fernet.generate_key().decode())'")),
]


def test_settings_defaults_and_overrides():
    assert Settings.from_env({}).graph_api_url == "https://graph.facebook.com/v21.0"
    settings = Settings.from_env({"PORT": "9000", "FACEBOOK_GRAPH_API_URL": "http://x/v1/",
                                  "SEND_MAX_ATTEMPTS": "3"})
    assert (settings.port, settings.graph_api_url, settings.send_max_attempts) == (
        9000, "http://x/v1", 3)


@pytest.mark.parametrize("env, message", [
    ({"PORT": "x"}, "PORT must be an integer"),
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


def test_defaults():
    assert Settings.from_env({}).model_dump() == DEFAULTS
    assert Settings() == Settings.from_env({})


def test_the_tables_name_every_variable_once():
    assert set(FULL) == set(Settings.variables()) and len(Settings.variables()) == len(DEFAULTS)
    assert set(RANGES) | set(FLAGS) | FREE_TEXT | {
        "MONGODB_DATABASE", "LOG_LEVEL", "LOG_FORMAT", "ALLOWED_ORIGINS", "TOKEN_ENCRYPTION_KEY",
        "FORWARDED_ALLOW_IPS",
    } == set(Settings.variables())


def test_a_full_valid_environment():
    settings = Settings.from_env({name: raw for name, (raw, _) in FULL.items()})
    assert {name: getattr(settings, FIELDS[name]) for name in FULL} == {
        name: parsed for name, (_, parsed) in FULL.items()}
    assert all(getattr(settings, field) != default for field, default in DEFAULTS.items())


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_variable_is_unset(blank):
    assert Settings.from_env(dict.fromkeys(Settings.variables(), blank)).model_dump() == DEFAULTS


def test_values_are_stripped():
    settings = Settings.from_env({"HOST": " 0.0.0.0\n", "PORT": " 9000 ", "LOG_LEVEL": " debug "})
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9000, "DEBUG")


@pytest.mark.parametrize("variable, lowest",
                         [(name, lowest) for name, (lowest, _) in RANGES.items()])
def test_the_lowest_value_of_each_number_is_taken(variable, lowest):
    assert getattr(Settings.from_env({variable: lowest}), FIELDS[variable]) == float(lowest)


@pytest.mark.parametrize("variable", FLAGS)
@pytest.mark.parametrize("word", FLAG_WORDS)
def test_flags_take_1_0_true_false_yes_no_on_off_in_any_case(variable, word):
    for spelling in (word, word.upper(), word.title()):
        settings = Settings.from_env({variable: spelling})
        assert getattr(settings, FIELDS[variable]) is FLAG_WORDS[word]


@pytest.mark.parametrize("variable, value, message", BAD)
def test_every_bad_value_names_its_variable(variable, value, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({variable: value})
    assert str(refused.value) == message


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PORT": "eighty", "LOG_FORMAT": "xml", "TOKEN_ENCRYPTION_KEY": "k"})
    message = str(refused.value)
    assert message.startswith("PORT must be an integer, got 'eighty'; ")
    assert "; LOG_FORMAT must be 'text' or 'json'" in message
    assert "; TOKEN_ENCRYPTION_KEY must be a Fernet key" in message


def test_a_refused_secret_is_not_repeated():
    key = Fernet.generate_key().decode()[:-3] + "!!="
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"TOKEN_ENCRYPTION_KEY": key})
    assert key not in str(refused.value)
    assert refused.value.__suppress_context__  # the pydantic error, with the input, is not shown


def test_the_process_environment_is_read_by_from_env_only(monkeypatch):
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("port", "9002")  # names are exact, as in the process environment
    assert Settings.from_env().port == 9001
    assert Settings().port == 8000
    monkeypatch.setenv("PORT", "x")
    assert Settings().port == 8000  # the schema export builds default settings anywhere
    with pytest.raises(ConfigError, match="PORT must be an integer"):
        Settings.from_env()


def test_settings_are_immutable_and_str_hides_secrets_too():
    settings = Settings.from_env({name: raw for name, (raw, _) in FULL.items()})
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1
    for text in (str(settings), repr(settings), BaseModel.__repr__(settings)):
        for secret in ("app-secret", "hook-secret", "system-token", "db-password", KEY):
            assert secret not in text
    assert settings.model_copy(update={"port": 1}).port == 1

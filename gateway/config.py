"""Settings, read from the environment once, in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet
from dataclasses import dataclass, field

DEFAULT_GRAPH_API_URL = "https://graph.facebook.com/v21.0"
# Where `npm run build` in frontend-sample/ puts the inbox, in a checkout of the repository.
DEFAULT_INBOX_DIR = str(Path(__file__).resolve().parent.parent / "frontend-sample" / "dist")


class ConfigError(ValueError):
    """A setting has a value the gateway cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    facebook_app_id: str = ""
    facebook_app_secret: str = ""
    facebook_webhook_secret: str = ""
    graph_api_url: str = DEFAULT_GRAPH_API_URL
    graph_api_timeout: float = 10.0
    mongodb_url: str = ""
    mongodb_database: str = "messenger_gateway"
    data_dir: str = "./data"
    system_token: str = ""
    send_max_attempts: int = 6
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    worker_poll_seconds: float = 1.0
    log_level: str = "INFO"
    graphql_max_depth: int = 10
    graphql_max_tokens: int = 2000
    graphql_max_aliases: int = 30
    graphql_cache_size: int = 256
    subscription_queue_size: int = 1000
    subscription_multiplex: bool = True
    ws_max_subscriptions: int = 100
    inbox_dir: str = DEFAULT_INBOX_DIR
    log_format: str = "text"
    max_body_bytes: int = 1024 * 1024
    ws_max_message_bytes: int = 64 * 1024
    store_timeout_seconds: float = 5.0
    webhook_timeout_seconds: float = 10.0
    webhook_retry_seconds: float = 24 * 3600.0
    query_cache_mb: float = 16.0  # 0: no query cache
    # Websockets: a socket that has not sent connection_init by then is closed (both protocols);
    # at most this many open at once per process (the next is closed with 1013); a subscriber
    # whose unsent events hold more than this many MiB is cut off as too slow.
    ws_init_timeout_seconds: float = 10.0
    ws_max_connections: int = 10_000
    subscription_queue_mb: float = 4.0
    # Browsers: origins besides the gateway's own that may call it (scheme://host[:port]).
    allowed_origins: tuple[str, ...] = ()
    # Listen on a non-loopback address without SYSTEM_TOKEN (auth is in front of the gateway).
    allow_open_api: bool = False
    # Outgoing webhooks may be posted to loopback, private, link-local and multicast addresses.
    webhook_allow_private: bool = False
    # The embedded store counts the work of each statement (see gateway/store/nxserve.py).
    store_measure_work: bool = False
    token_encryption_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def number(name: str, default: float, kind: type = float, minimum: float = 0) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
            if value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
            return value

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
            return raw in ("1", "true", "yes", "on")

        origins = tuple(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",")
                        if o.strip())
        for origin in origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise ConfigError(
                    f"ALLOWED_ORIGINS must list origins such as https://inbox.example.com, "
                    f"comma-separated; got {origin!r}")

        database = text("MONGODB_DATABASE", cls.mongodb_database)
        if not database.replace("_", "").isalnum() or not database.isascii():
            raise ConfigError("MONGODB_DATABASE may hold only letters, digits and underscores")
        log_level = text("LOG_LEVEL", cls.log_level).upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        log_format = text("LOG_FORMAT", cls.log_format).lower()
        if log_format not in ("text", "json"):
            raise ConfigError("LOG_FORMAT must be text or json")
        multiplex = text("SUBSCRIPTION_MULTIPLEX", "1").lower()
        if multiplex not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError("SUBSCRIPTION_MULTIPLEX must be 1 or 0")
        key = env.get("TOKEN_ENCRYPTION_KEY", "").strip()
        if key:
            try:
                Fernet(key.encode())
            except ValueError:
                raise ConfigError(
                    "TOKEN_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                ) from None
        return cls(
            host=text("HOST", cls.host),
            port=int(number("PORT", cls.port, int, 0)),
            facebook_app_id=text("FACEBOOK_APP_ID", ""),
            facebook_app_secret=text("FACEBOOK_APP_SECRET", ""),
            facebook_webhook_secret=text("FACEBOOK_WEBHOOK_SECRET", ""),
            graph_api_url=text("FACEBOOK_GRAPH_API_URL", DEFAULT_GRAPH_API_URL).rstrip("/"),
            graph_api_timeout=number("GRAPH_API_TIMEOUT_SECONDS", cls.graph_api_timeout, float, 0.1),
            mongodb_url=text("MONGODB_URL", ""),
            mongodb_database=database,
            data_dir=text("DATA_DIR", cls.data_dir),
            system_token=text("SYSTEM_TOKEN", ""),
            send_max_attempts=int(number("SEND_MAX_ATTEMPTS", cls.send_max_attempts, int, 1)),
            retry_base_seconds=number("RETRY_BASE_SECONDS", cls.retry_base_seconds, float, 0.01),
            retry_max_seconds=number("RETRY_MAX_SECONDS", cls.retry_max_seconds, float, 0.01),
            worker_poll_seconds=number("WORKER_POLL_SECONDS", cls.worker_poll_seconds, float, 0.01),
            log_level=log_level,
            graphql_max_depth=int(number("GRAPHQL_MAX_DEPTH", cls.graphql_max_depth, int, 1)),
            graphql_max_tokens=int(number("GRAPHQL_MAX_TOKENS", cls.graphql_max_tokens, int, 1)),
            graphql_max_aliases=int(
                number("GRAPHQL_MAX_ALIASES", cls.graphql_max_aliases, int, 0)
            ),
            graphql_cache_size=int(number("GRAPHQL_CACHE_SIZE", cls.graphql_cache_size, int, 1)),
            subscription_queue_size=int(
                number("SUBSCRIPTION_QUEUE_SIZE", cls.subscription_queue_size, int, 1)
            ),
            subscription_multiplex=multiplex in ("1", "true", "yes", "on"),
            ws_max_subscriptions=int(
                number("WS_MAX_SUBSCRIPTIONS", cls.ws_max_subscriptions, int, 1)
            ),
            inbox_dir=text("INBOX_DIR", DEFAULT_INBOX_DIR),
            log_format=log_format,
            max_body_bytes=int(number("MAX_BODY_BYTES", cls.max_body_bytes, int, 1024)),
            ws_max_message_bytes=int(
                number("WS_MAX_MESSAGE_BYTES", cls.ws_max_message_bytes, int, 1024)
            ),
            store_timeout_seconds=number("STORE_TIMEOUT_SECONDS", cls.store_timeout_seconds,
                                         float, 0.1),
            webhook_timeout_seconds=number("WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds,
                                           float, 0.1),
            webhook_retry_seconds=number("WEBHOOK_RETRY_SECONDS", cls.webhook_retry_seconds,
                                         float, 1),
            query_cache_mb=number("QUERY_CACHE_MB", cls.query_cache_mb, float, 0),
            token_encryption_key=key,
            ws_init_timeout_seconds=number("WS_INIT_TIMEOUT_SECONDS", cls.ws_init_timeout_seconds,
                                           float, 0.1),
            ws_max_connections=int(number("WS_MAX_CONNECTIONS", cls.ws_max_connections, int, 1)),
            subscription_queue_mb=number("SUBSCRIPTION_QUEUE_MB", cls.subscription_queue_mb,
                                         float, 0.01),
            allowed_origins=origins,
            allow_open_api=flag("ALLOW_OPEN_API", cls.allow_open_api),
            webhook_allow_private=flag("WEBHOOK_ALLOW_PRIVATE", cls.webhook_allow_private),
            store_measure_work=flag("STORE_MEASURE_WORK", False),
        )

    def __repr__(self) -> str:  # secrets never reach a log through repr()
        return f"Settings(host={self.host!r}, port={self.port}, store={self.store_description!r})"

    @property
    def store_description(self) -> str:
        """Where data lives, without credentials, for the start-up log line."""
        if not self.mongodb_url:
            return f"embedded nx-27017 in {self.data_dir}"
        url = self.mongodb_url
        scheme, _, rest = url.partition("://")
        if "@" in rest.split("/", 1)[0]:
            rest = rest.split("@", 1)[1]
        return f"MongoDB {scheme}://{rest.split('?', 1)[0]} database {self.mongodb_database}"

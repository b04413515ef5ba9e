"""Settings, read from the environment once, in this one place.

Each field is one environment variable, named as the field in capitals unless its
`validation_alias` says otherwise, with its type, default and limits declared beside it, so
a variable is added in one line. A variable set to blanks is unset. Every error is a
ConfigError that names the variable, for the start-up message.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.fernet import Fernet
from pydantic import AfterValidator, AliasGenerator, BeforeValidator, Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_GRAPH_API_URL = "https://graph.facebook.com/v21.0"
# The inbox shipped inside the package (`npm run build` in frontend-sample/ writes it there).
DEFAULT_INBOX_DIR = str(Path(__file__).resolve().parent / "web" / "inbox")

FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}


class ConfigError(ValueError):
    """A setting has a value the gateway cannot use; the message names it."""


def _flag(raw: Any) -> Any:
    """Only these words, in any case: pydantic's own booleans take `t` or `n` too."""
    if not isinstance(raw, str):
        return raw
    if raw.lower() not in FLAG_WORDS:
        raise ValueError(f"must be 1 or 0, got {raw!r}")
    return FLAG_WORDS[raw.lower()]


def _origins(raw: Any) -> Any:
    """`https://a.example, http://b.example:8080/` → a tuple of scheme://host[:port]."""
    if not isinstance(raw, str):
        return raw
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError("must list origins such as https://inbox.example.com, "
                             f"comma-separated; got {origin!r}")
    return origins


def _database_name(name: str) -> str:
    """The embedded store keeps each database in a file named after it."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError("may hold only letters, digits and underscores")
    return name


def _fernet_key(key: str) -> str:
    """Refused at start-up, not at the first token sealed with it."""
    if key:
        try:
            Fernet(key.encode())
        except ValueError:
            raise ValueError(
                "must be a Fernet key (32 url-safe base64-encoded bytes); make one with: "
                "python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'") from None
    return key


def _addresses(raw: str) -> str:
    """`127.0.0.1, 172.30.0.0/24` as uvicorn reads it; a name or a typo is refused, not ignored."""
    for entry in (e.strip() for e in raw.split(",")):
        if entry != "*":
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError("must list IP addresses or networks (172.30.0.10, "
                                 f"172.30.0.0/24), comma-separated, or *; got {entry!r}") from None
    return ",".join(e.strip() for e in raw.split(","))


def _without_trailing_slash(url: str) -> str:
    """The URL is shown and compared as people write it: `…/v21.0`, not `…/v21.0/`."""
    return url.rstrip("/")


def _upper(raw: Any) -> Any:
    return raw.upper() if isinstance(raw, str) else raw


def _lower(raw: Any) -> Any:
    return raw.lower() if isinstance(raw, str) else raw


Flag = Annotated[bool, BeforeValidator(_flag)]
# A secret stays out of repr() and str() (pydantic's too), and so out of any log line.
Secret = Annotated[str, Field(repr=False)]

# What a pydantic error means, in words a person setting a variable reads after its name.
MESSAGES = {
    "int_parsing": "must be an integer, got {input!r}",
    "float_parsing": "must be a number, got {input!r}",
    "greater_than_equal": "must be at least {ge:g}, got {input!r}",
    "literal_error": "must be {expected}, got {input!r}",
}


def _message(error: ErrorDetails) -> str:
    variable = error["loc"][0]
    ctx = error.get("ctx", {})
    if error["type"] == "value_error":
        return f"{variable} {ctx['error']}"
    template = MESSAGES.get(error["type"])
    if template is None:
        return f"{variable}: {error['msg']}"
    return f"{variable} {template.format(input=error['input'], **ctx)}"


class Settings(BaseSettings):
    """One field per environment variable; built once at start-up and never changed after."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=str.upper),
        populate_by_name=True,
        # A bad TOKEN_ENCRYPTION_KEY is close to the real one: keep it out of tracebacks.
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0)] = 8000
    facebook_app_id: str = ""
    facebook_app_secret: Secret = ""
    facebook_webhook_secret: Secret = ""
    graph_api_url: Annotated[str, Field(validation_alias="FACEBOOK_GRAPH_API_URL"),
                             AfterValidator(_without_trailing_slash)] = DEFAULT_GRAPH_API_URL
    graph_api_timeout: Annotated[float, Field(ge=0.1,
                                              validation_alias="GRAPH_API_TIMEOUT_SECONDS")] = 10.0
    mongodb_url: Secret = ""  # it may hold a password; store_description shows it without
    mongodb_database: Annotated[str, AfterValidator(_database_name)] = "messenger_gateway"
    data_dir: str = "./data"
    system_token: Secret = ""
    send_max_attempts: Annotated[int, Field(ge=1)] = 6
    # Messages delivered at once (each conversation's one at a time, in queue order), and each
    # page's Send API pace: below Meta's 300 calls/s (10 for audio and video).
    send_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    # A send starts in the process that took it, with what it has in hand, when a lane is free
    # and its conversation has none under way there; off: every send goes through the queue.
    send_at_once: Flag = True
    send_rate_per_page: Annotated[float, Field(ge=0.1)] = 250.0
    send_media_rate_per_page: Annotated[float, Field(ge=0.1)] = 8.0
    # conversations.read (markConversationRead) also tells the person their messages were seen
    # (the Send API's mark_seen), in the background: the read never waits for Meta.
    mark_seen_on_read: Flag = False
    retry_base_seconds: Annotated[float, Field(ge=0.01)] = 2.0
    retry_max_seconds: Annotated[float, Field(ge=0.01)] = 300.0
    worker_poll_seconds: Annotated[float, Field(ge=0.01)] = 1.0
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"],
                         BeforeValidator(_upper)] = "INFO"
    graphql_max_depth: Annotated[int, Field(ge=1)] = 10
    graphql_max_tokens: Annotated[int, Field(ge=1)] = 2000
    graphql_max_aliases: Annotated[int, Field(ge=0)] = 30
    graphql_cache_size: Annotated[int, Field(ge=1)] = 256
    subscription_queue_size: Annotated[int, Field(ge=1)] = 1000
    subscription_multiplex: Flag = True
    ws_max_subscriptions: Annotated[int, Field(ge=1)] = 100
    inbox_dir: str = DEFAULT_INBOX_DIR
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = "text"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # POST /facebook alone: Meta batches up to 1,000 events in one call (deploy/nginx.conf's
    # client_max_body_size for /facebook says the same).
    facebook_max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    # An uploaded attachment (POST /media.upload, GraphQL uploadAttachment) is refused past this
    # many bytes: Meta's Attachment Upload API takes files up to 25 MB.
    attachment_max_bytes: Annotated[int, Field(ge=1024)] = 25 * 1024 * 1024
    ws_max_message_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    store_timeout_seconds: Annotated[float, Field(ge=0.1)] = 5.0
    webhook_timeout_seconds: Annotated[float, Field(ge=0.1)] = 10.0
    # POST /facebook answers once its events are stored and applied, or after this many ms
    # (0: right after storing them); what is not applied by then goes on in the background. At
    # most WEBHOOK_APPLY_QUEUE_EVENTS events are in hand per process; a call that does not fit
    # waits for room (see gateway/usecases/applying.py).
    webhook_apply_wait_ms: Annotated[int, Field(ge=0, le=600_000)] = 500
    webhook_apply_queue_events: Annotated[int, Field(ge=1)] = 5_000
    webhook_retry_seconds: Annotated[float, Field(ge=1)] = 24 * 3600.0
    query_cache_mb: Annotated[float, Field(ge=0)] = 16.0  # 0: no query cache
    # Websockets: a socket that has not sent connection_init by then is closed (both protocols);
    # at most this many open at once per process (the next is closed with 1013); a subscriber
    # whose unsent events hold more than this many MiB is cut off as too slow.
    ws_init_timeout_seconds: Annotated[float, Field(ge=0.1)] = 10.0
    ws_max_connections: Annotated[int, Field(ge=1)] = 10_000
    subscription_queue_mb: Annotated[float, Field(ge=0.01)] = 4.0
    # Subscriptions over HTTP (multipart, SSE) open at once per process; the next is answered 503.
    http_max_subscriptions: Annotated[int, Field(ge=1)] = 1000
    # Automatic persisted queries: MiB of documents kept by hash (0: APQ not supported).
    persisted_queries_mb: Annotated[float, Field(ge=0)] = 2.0
    # Browsers: origins besides the gateway's own that may call it (scheme://host[:port]).
    allowed_origins: Annotated[tuple[str, ...], BeforeValidator(_origins)] = ()
    # Listen on a non-loopback address without SYSTEM_TOKEN (auth is in front of the gateway).
    allow_open_api: Flag = False
    # Whose X-Forwarded-For and X-Forwarded-Proto are believed: the reverse proxy's addresses
    # or networks, comma-separated (uvicorn's forwarded_allow_ips); anyone else's are ignored.
    forwarded_allow_ips: Annotated[str, AfterValidator(_addresses)] = "127.0.0.1"
    # Outgoing webhooks may be posted to loopback, private, link-local and multicast addresses.
    webhook_allow_private: Flag = False
    # The embedded store counts the work of each statement (see gateway/store/nxserve.py).
    store_measure_work: Flag = False
    token_encryption_key: Annotated[Secret, AfterValidator(_fernet_key)] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: `from_env` reads the variables (from the process or a mapping
        alike), and `Settings()` is the defaults, whatever the environment holds."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        given: dict[str, Any] = {variable: value for variable in cls.variables()
                                 if (value := env.get(variable, "").strip())}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError("; ".join(_message(error) for error in exc.errors())) from None

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable read, in the order of the fields."""
        return [str(field.validation_alias) for field in cls.model_fields.values()]

    def __repr__(self) -> str:  # secrets never reach a log through repr()
        return f"Settings(host={self.host!r}, port={self.port}, store={self.store_description!r})"

    __str__ = __repr__

    def startup_warnings(self) -> list[str]:
        """What will not work as configured, said once at start-up rather than as a bare 503 or
        403 at the first request. An open API off loopback is cli.py's to refuse or warn of."""
        warnings = []
        if not self.facebook_app_secret:
            warnings.append("FACEBOOK_APP_SECRET is not set: every webhook is refused (503), "
                            "as its signature cannot be checked")
        if not self.facebook_webhook_secret:
            warnings.append("FACEBOOK_WEBHOOK_SECRET is not set: Meta's verification challenge "
                            "(GET /facebook) is refused (403), so no webhook can be registered")
        if not self.system_token and not self.allow_open_api:
            warnings.append(f"SYSTEM_TOKEN is not set: the API is open to anyone who can reach "
                            f"{self.host}:{self.port}, with no token asked")
        return warnings

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

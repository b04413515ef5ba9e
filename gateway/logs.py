"""Logging set-up: plain lines, or one JSON object per line with `LOG_FORMAT=json`, with no secret.

Secrets reach a log line in two ways, and both are closed here at every level:
- libraries that dump traffic at DEBUG (websockets' handshake headers and frames, which uvicorn
  logs under its own `uvicorn.error` logger; httpx's and httpcore's request lines; PyMongo's
  commands, page tokens among them) are kept quiet;
- whatever still gets through passes the handler's `Redact` filter, which scrubs the configured
  secrets' values, `Bearer …`, Authorization/Cookie header values, token-like query parameters and
  JSON fields, credentials in URLs and connection_init payloads — from the message, its
  arguments, the exception text and the stack text.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from gateway.middleware import request_id

REDACTED = "[redacted]"
# Names whose values are secrets, in JSON fields, Python reprs, header dumps and query strings.
_SECRET_NAME = (r"[\w.-]*(?:token|secret|password|passwd|api[_-]?key|signature[_-]?key|proof)"
                r"|(?:proxy-)?authorization|cookie|set-cookie")
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "page_token": "…", 'authorization': '…', (b'cookie', b'…'), authorization="…"
    (re.compile(r"(?i)(?P<key>b?(?P<q>[\"'])(?:" + _SECRET_NAME + r")(?P=q)|\b(?:" + _SECRET_NAME
                + r"))(?P<sep>\s*[:=,]\s*)b?(?P<vq>[\"'])(?:\\.|(?!(?P=vq)).)*(?P=vq)"),
     r"\g<key>\g<sep>\g<vq>" + REDACTED + r"\g<vq>"),
    # Header lines as websockets and h11 dump them: `authorization: Basic …`, `Cookie: a=b; c=d`
    (re.compile(r"(?im)\b((?:proxy-)?authorization|cookie|set-cookie)(\s*:\s*)(?![\"'\[])[^\r\n]+"),
     r"\1\2" + REDACTED),
    # Query strings and forms: ?access_token=…, &hub.verify_token=…, SYSTEM_TOKEN=…
    (re.compile(r"(?i)(?<![\w.-])((?:" + _SECRET_NAME + r")=)[^&\s\"'#<>,;)\]}]+"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;)\]}]+"), REDACTED),
    # user:password@ in URLs (a MongoDB URL, a proxy)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@"), r"\1:" + REDACTED + "@"),
]
_CONNECTION_INIT = re.compile(r"connection_init")
_PAYLOAD = re.compile(r"(?i)payload")
# Libraries whose DEBUG records are traffic. websockets logs through the logger uvicorn hands it
# (`uvicorn.error`), so its records are known by the file they come from, not by logger name.
_TRAFFIC_LOGGERS = ("httpx", "httpcore", "pymongo", "websockets", "hpack", "multipart")


def _package_dirs(names: Iterable[str]) -> tuple[str, ...]:
    """Where the installed packages among `names` live (without importing them)."""
    dirs = []
    for name in names:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(os.path.join(os.path.abspath(location), ""))
    return tuple(dirs)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the secrets listed above (and the given values)."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    if "connection_init" in text:
        text = "\n".join(_without_init_payload(line) for line in text.split("\n"))
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _without_init_payload(line: str) -> str:
    """A line that shows a connection_init frame keeps what comes before the frame."""
    if not _CONNECTION_INIT.search(line) or not _PAYLOAD.search(line):
        return line
    start = min((i for i in (line.find("{"), line.find("[")) if i >= 0), default=-1)
    if start < 0:
        start = line.find("connection_init") + len("connection_init")
    return line[:start] + "{connection_init frame: " + REDACTED + "}"


class Redact(logging.Filter):
    """Scrubs every record the handler writes: message, arguments, exception and stack text.

    The record is rewritten in place (message formatted, arguments dropped, exception formatted
    to text), so no formatter can print the raw values afterwards.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is scrubbed whole; very short values
        # would blank out ordinary words and protect nothing.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # arguments that do not fit the format
            message = f"{record.msg} (arguments not shown: they did not fit the message)"
        record.msg = scrub(message, self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self.secrets)
        return True


class QuietTraffic(logging.Filter):
    """Drops the DEBUG records of libraries that log the bytes they carry (headers, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.dirs = _package_dirs(("websockets", "h11", "httpcore", "wsproto"))

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO or not record.pathname.startswith(self.dirs)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := getattr(record, "request_id", None):
            entry["request_id"] = request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # formatted (and scrubbed) by `Redact`
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Log to stderr at `level`; `secrets` are values no line may show (tokens, keys)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(QuietTraffic())
    handler.addFilter(Redact(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Graph API URLs carry page tokens; PyMongo's
    # DEBUG command log prints the documents written, page tokens among them; websockets (when
    # not under uvicorn's logger) dumps handshake headers and frames.
    for name in _TRAFFIC_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

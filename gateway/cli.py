"""`messenger-gateway [--host H] [--port P] [--allow-open-api]`: run the gateway under uvicorn.

Without SYSTEM_TOKEN it listens on loopback only (127.0.0.0/8, ::1, localhost), unless told
--allow-open-api because authentication sits in front of it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import uvicorn

from gateway import logs
from gateway.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"messenger-gateway: {exc}")
    parser = argparse.ArgumentParser(prog="messenger-gateway", description=__doc__)
    parser.add_argument("--host", default=settings.host, help="address to listen on (env HOST)")
    parser.add_argument("--port", type=int, default=settings.port,
                        help="port to listen on (env PORT)")
    parser.add_argument("--allow-open-api", action="store_true", default=settings.allow_open_api,
                        help="listen on a non-loopback address without SYSTEM_TOKEN, when your "
                             "own auth is in front of the gateway (env ALLOW_OPEN_API=1)")
    args = parser.parse_args(argv)
    settings = settings.model_copy(update={"host": args.host, "port": args.port,
                                           "allow_open_api": args.allow_open_api})
    open_api = not settings.system_token and not is_loopback(settings.host)
    if open_api and not settings.allow_open_api:
        sys.exit(
            f"messenger-gateway: refusing to listen on {settings.host} without SYSTEM_TOKEN: "
            "anyone who can reach it could read and send every message. Set SYSTEM_TOKEN "
            "(a long random string clients send as 'Authorization: Bearer <token>'), listen "
            "on 127.0.0.1, or, when your own authentication is in front of the gateway, set "
            "ALLOW_OPEN_API=1 (or pass --allow-open-api).")
    logs.configure(settings.log_level, settings.log_format, secrets=(
        settings.system_token, settings.facebook_app_secret, settings.facebook_webhook_secret,
        settings.token_encryption_key))
    if open_api:
        logging.getLogger("gateway").warning(
            "listening on %s without SYSTEM_TOKEN (ALLOW_OPEN_API): every route is open to "
            "anyone who can reach it, unless authentication in front of the gateway stops them",
            settings.host)

    from gateway.app import SHUTDOWN_GRACEFUL_SECONDS, create_app

    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_config=None, log_level=settings.log_level.lower(), access_log=False,
        lifespan="on", ws_max_size=settings.ws_max_message_bytes,
        timeout_graceful_shutdown=SHUTDOWN_GRACEFUL_SECONDS,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` (HOST / --host) reaches this machine only: 127.0.0.0/8, ::1, localhost."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: it may resolve to any address, so it is not taken for loopback
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


if __name__ == "__main__":
    main()

"""`messenger-gateway [--host H] [--port P] [--allow-open-api] [--sandbox]`: run the gateway
under uvicorn; `messenger-gateway simulate EVENT ...`: post a signed webhook event to one.

Without SYSTEM_TOKEN it listens on loopback only (127.0.0.0/8, ::1, localhost), unless told
--allow-open-api because authentication sits in front of it. With --sandbox, Meta is simulated
in the same process (gateway/sandbox/), which listens on loopback only in any case.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import uvicorn

from gateway import logs
from gateway.config import ConfigError, Settings
from gateway.sandbox import simulate
from gateway.sandbox.server import Sandbox, own_url
from gateway.sandbox.server import configure as configure_sandbox


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
    parser.add_argument("--sandbox", action="store_true",
                        help="simulate Meta in this process: a Graph API, a connected demo "
                             "page, and a customer page at /sandbox to write to it from "
                             "(loopback only; see docs/sandbox.md)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    simulate.add_parser(commands, own_url(settings))
    args = parser.parse_args(argv)
    if args.command == "simulate":
        sys.exit(simulate.run(args, settings.facebook_app_secret))
    settings = settings.model_copy(update={"host": args.host, "port": args.port,
                                           "allow_open_api": args.allow_open_api})
    if args.sandbox:
        if not is_loopback(settings.host) or settings.system_token:
            sys.exit("messenger-gateway: the sandbox runs as the gateway does without "
                     "SYSTEM_TOKEN, on loopback only (Meta's side, which it simulates, sends no "
                     f"token): listen on 127.0.0.1 and unset SYSTEM_TOKEN (host {settings.host}"
                     f", SYSTEM_TOKEN {'set' if settings.system_token else 'unset'}).")
        given = settings
        settings = configure_sandbox(settings)
        print(f"Sandbox: Meta is simulated in this process (Graph API at "
              f"{settings.graph_api_url}, database {settings.mongodb_database}); write to the "
              f"demo page as a customer at {own_url(settings)}/sandbox/", file=sys.stderr)
        made = [f"{name}={value}" for name, value, before in (
            ("FACEBOOK_APP_SECRET", settings.facebook_app_secret, given.facebook_app_secret),
            ("FACEBOOK_WEBHOOK_SECRET", settings.facebook_webhook_secret,
             given.facebook_webhook_secret)) if not before]
        if made:  # `simulate` and Meta's challenge need them
            print("Sandbox: made up for this run: export " + " ".join(made), file=sys.stderr)
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
        create_app(settings, sandbox=Sandbox(settings) if args.sandbox else None),
        host=settings.host, port=settings.port,
        log_config=None, log_level=settings.log_level.lower(), access_log=False,
        lifespan="on", ws_max_size=settings.ws_max_message_bytes,
        proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
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

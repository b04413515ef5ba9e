"""`messenger-gateway [--host H] [--port P]`: run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import uvicorn

from gateway.config import ConfigError, Settings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and Graph API URLs carry page tokens; PyMongo's
    # DEBUG command log prints the documents written, page tokens among them.
    for name in ("httpx", "httpcore", "pymongo"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"messenger-gateway: {exc}")
    parser = argparse.ArgumentParser(prog="messenger-gateway", description=__doc__)
    parser.add_argument("--host", default=settings.host, help="address to listen on (env HOST)")
    parser.add_argument("--port", type=int, default=settings.port,
                        help="port to listen on (env PORT)")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(settings, host=args.host, port=args.port)
    configure_logging(settings.log_level)

    from gateway.app import create_app

    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_config=None, log_level=settings.log_level.lower(), access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()

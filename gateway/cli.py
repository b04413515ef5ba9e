"""`messenger-gateway [--host H] [--port P]`: run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import dataclasses
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
    args = parser.parse_args(argv)
    settings = dataclasses.replace(settings, host=args.host, port=args.port)
    logs.configure(settings.log_level, settings.log_format)

    from gateway.app import create_app

    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_config=None, log_level=settings.log_level.lower(), access_log=False,
        lifespan="on", ws_max_size=settings.ws_max_message_bytes,
    )


if __name__ == "__main__":
    main()

"""`python -m gateway.store.nxserve`: nx-27017's own request handler served on a Unix socket.

nx-27017 (0.8.1) listens only on TCP and has no authentication, so on its own any local user could
read the page tokens and write the store through its loopback port. This launcher builds the
handler exactly as nx-27017's `main()` does (a directory of SQLite files, WAL journal, its log
format, a pid file), but serves it with `asyncio.start_unix_server` on a socket inside a directory
only the gateway's user may enter, and creates every file with umask 077: nothing listens on TCP,
and only that user can connect or read the files. The embedded store (store/embedded.py) runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from neosqlite.options import JournalMode
from nx_27017.daemon import remove_pid_file, write_pid_file
from nx_27017.handler import NeoSQLiteHandler
from nx_27017.server import handle_client

try:  # as nx-27017 serves: on uvloop when it is installed
    from uvloop import run
except ImportError:
    from asyncio import run

log = logging.getLogger("nx_27017")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.store.nxserve", description=__doc__)
    parser.add_argument("--data-dir", required=True, help="one SQLite file per database here")
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--log-file", required=True)
    args = parser.parse_args(argv)

    os.umask(0o077)  # the socket, the pid file, the log and every SQLite file: owner only
    handler_ = logging.FileHandler(args.log_file)
    handler_.setFormatter(logging.Formatter(
        "%(asctime)s - %(name)s - %(levelname)s - [%(process)d] - %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler_])

    if not write_pid_file(args.pid_file):  # another server still holds these files
        return 1
    try:
        run(serve(args.data_dir, args.socket))
    finally:
        remove_pid_file(args.pid_file)
        with contextlib.suppress(OSError):
            os.unlink(args.socket)
    return 0


async def serve(data_dir: str, path: str) -> None:
    """Serve the store in `data_dir` on the Unix socket `path` until SIGTERM or SIGINT."""
    handler = NeoSQLiteHandler(data_dir=data_dir, journal_mode=JournalMode.validate("WAL"))

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_client(reader, writer, handler)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_unix_server(client, path=path)
    os.chmod(path, 0o600)  # as every other file of the store (connecting needs write access)
    log.info("Starting NX-27017 (nx-27017's handler, served by gateway.store.nxserve) with "
             "data_dir=%s on the Unix socket %s, journal_mode=WAL", data_dir, path)
    async with server:
        await stop.wait()
    log.info("Shutting down...")


if __name__ == "__main__":
    sys.exit(main())

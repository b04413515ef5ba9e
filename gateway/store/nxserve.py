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
import collections
import contextlib
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from typing import Any

from neosqlite.options import JournalMode
from nx_27017.changestream import ChangeStreamManager
from nx_27017.daemon import remove_pid_file, write_pid_file
from nx_27017.handler import NeoSQLiteHandler
from nx_27017.server import handle_client

try:  # as nx-27017 serves: on uvloop when it is installed
    from uvloop import run
except ImportError:
    from asyncio import run  # type: ignore[assignment]  # the same call, without uvloop

log = logging.getLogger("nx_27017")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.store.nxserve", description=__doc__)
    parser.add_argument("--data-dir", required=True, help="one SQLite file per database here")
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--measure-work", action="store_true",
                        help="count the work of each statement; the `gatewayWork` command reads it")
    args = parser.parse_args(argv)

    os.umask(0o077)  # the socket, the pid file, the log and every SQLite file: owner only
    handler_ = logging.FileHandler(args.log_file)
    handler_.setFormatter(logging.Formatter(
        "%(asctime)s - %(name)s - %(levelname)s - [%(process)d] - %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler_])

    if not write_pid_file(args.pid_file):  # another server still holds these files
        return 1
    try:
        run(serve(args.data_dir, args.socket, args.measure_work))
    finally:
        remove_pid_file(args.pid_file)
        with contextlib.suppress(OSError):
            os.unlink(args.socket)
    return 0


async def serve(data_dir: str, path: str, measure_work: bool = False) -> None:
    """Serve the store in `data_dir` on the Unix socket `path` until SIGTERM or SIGINT."""
    kind = MeasuringHandler if measure_work else Handler
    handler = kind(data_dir=data_dir, journal_mode=JournalMode.validate("WAL"))

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


# --- change streams at a cost that does not grow --------------------------------------------
# nx-27017 logs every write to a watched collection in one table, `_neosqlite_changestream`, which
# has no index but its rowid. Each getMore on a change stream reads the rows of its collection
# after its position, then deletes those every stream has passed: both statements filter on the
# collection's name, so both read the whole table, and the second runs on every getMore (every
# few milliseconds per stream while a gateway follows it). The server below keeps nx-27017's
# behaviour and makes it cheap: an index on (collection_name, id) serves both statements, and
# the deletion runs at most once per PRUNE_SECONDS for each collection.
CHANGES_TABLE = "_neosqlite_changestream"
# The table as neosqlite creates it (neosqlite/changestream.py), so that the index can be made
# before the first stream opens; CREATE TABLE IF NOT EXISTS leaves a table it made alone.
CHANGES_DDL = f"""CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_name TEXT NOT NULL,
    operation TEXT NOT NULL,
    document_id INTEGER,
    document_data TEXT,
    document_id_value TEXT,
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
)"""
CHANGES_INDEX = (f"CREATE INDEX IF NOT EXISTS gateway_changestream_collection_id "
                 f"ON {CHANGES_TABLE}(collection_name, id)")
PRUNE_SECONDS = 1.0


class ChangeStreams(ChangeStreamManager):
    """nx-27017's change streams, deleting what every stream has read once a second at most."""

    def __init__(self) -> None:
        super().__init__()
        self._pruned: dict[tuple[str, str], float] = {}

    def _prune(self, db_name: str, collection_name: str) -> None:
        now = time.monotonic()
        key = (db_name, collection_name)
        if now - self._pruned.get(key, -PRUNE_SECONDS) < PRUNE_SECONDS:
            return
        self._pruned[key] = now
        super()._prune(db_name, collection_name)


class Handler(NeoSQLiteHandler):
    """nx-27017's handler, with change streams whose cost does not grow with the data."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._change_stream_manager = ChangeStreams()

    def _open_db_conn(self, db_name: str) -> Any:
        conn = super()._open_db_conn(db_name)
        conn.db.execute(CHANGES_DDL)
        conn.db.execute(CHANGES_INDEX)
        return conn


# --- measuring work ---------------------------------------------------------------------------
# With --measure-work, every SQLite statement the server runs is counted, with the virtual-machine
# instructions it took (SQLite's progress handler, every STEP_UNIT of them) and, for a statement
# that reads a collection's table without an index, the table it scanned (from EXPLAIN QUERY
# PLAN). The `gatewayWork` command answers the totals so far: a measure of work that does not
# depend on the machine's speed, for tests and benchmarks (nx-27017's own `explain` answers no
# figures). Off by default: it costs a query plan per statement.
STEP_UNIT = 100
WORK_COMMAND = "gatewayWork"
# "SCAN messages" or "SCAN messages USING INDEX …": the first reads every row of the table, the
# second every entry of an index (in the index's order), which is as much.
_SCAN = re.compile(r"^SCAN (\w+)(?: USING (COVERING )?INDEX (\w+))?$")
# Tables of the schema itself (small, and read whole by design), json_each's virtual tables, and
# the temporary tables nx-27017 fills from a collection (the statement that fills one is counted).
_META_TABLES = re.compile(r"^(sqlite_|neosqlite_index_keys$|json_each|pragma_|temp_)")


class Work:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.steps = 0
        self.statements = 0
        self.scans: collections.Counter[str] = collections.Counter()  # table -> statements
        self.scanned_sql: dict[str, str] = {}  # table -> the last statement that scanned it
        self.by_shape: collections.Counter[str] = collections.Counter()  # shape -> steps
        self.current = ""  # the shape of the statement running now
        self.commands: collections.Counter[str] = collections.Counter()  # "find messages" -> n

    def answer(self) -> dict[str, Any]:
        with self.lock:
            top = self.by_shape.most_common(40)
            return {"ok": 1, "steps": self.steps * STEP_UNIT, "statements": self.statements,
                    "scans": dict(self.scans), "scannedSql": dict(self.scanned_sql),
                    "shapes": [[shape, steps * STEP_UNIT] for shape, steps in top],
                    "commands": dict(self.commands)}  # round trips, by command_shape


_FILLED_BY = re.compile(r"^\s*CREATE\b.*?\bAS\s+(SELECT\b)", re.IGNORECASE | re.DOTALL)


def query_of(sql: str) -> str | None:
    """The query a statement runs: itself, or the one that fills a table it creates."""
    if sql.lstrip()[:7].upper().startswith(("SELECT", "UPDATE", "DELETE")):
        return sql
    filled = _FILLED_BY.match(sql)
    return sql[filled.start(1):] if filled else None
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+\b")


def shape(sql: str) -> str:
    """A statement with its literals replaced by `?`: the same query with other values."""
    return _LITERALS.sub("?", " ".join(sql.split()))[:400]


def command_shape(body: dict[str, Any], sections: list[tuple[str, Any]]) -> str:
    """A round trip by command, collection and, for a write, the fields its first statement
    selects by: `update conversations (_id, last_message_at)`."""
    name, subject = next(iter(body.items()))
    shape_ = f"{name} {subject}" if isinstance(subject, str) else name
    field = {"update": "updates", "delete": "deletes"}.get(name)
    if field:
        statements = body.get(field) or [
            doc for kind, part in sections if kind == "payload" for doc in part.get(field, [])]
        if statements and isinstance(statements[0].get("q"), dict):
            shape_ += f" ({', '.join(sorted(statements[0]['q']))})"
    return shape_


class MeasuringHandler(Handler):
    """nx-27017's handler, counting the work of every statement it runs (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.work = Work()
        super().__init__(*args, **kwargs)

    def _open_db_conn(self, db_name: str) -> Any:
        conn = super()._open_db_conn(db_name)
        raw, work = conn.db, self.work
        explaining = threading.local()

        def step() -> int:
            # Under the GIL; statements of one database run one at a time (nx-27017 holds a lock
            # per database), so the steps since a statement started are its own.
            work.steps += 1
            work.by_shape[work.current] += 1
            return 0

        def statement(sql: str) -> None:
            if getattr(explaining, "on", False):
                return
            with work.lock:
                work.statements += 1
                work.current = shape(sql)
            query = query_of(sql)
            if query is None:
                return
            explaining.on = True
            try:
                plan = [row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + query).fetchall()]
            except sqlite3.Error:  # a statement that only makes sense with its parameters bound
                plan = []
            finally:
                explaining.on = False
            for line in plan:
                match = _SCAN.match(line)
                if match and not _META_TABLES.match(match.group(1)):
                    with work.lock:
                        work.scans[match.group(1)] += 1
                        work.scanned_sql[match.group(1)] = sql[:500]

        raw.set_progress_handler(step, STEP_UNIT)
        raw.set_trace_callback(statement)
        return conn

    def handle_command(self, msg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = next((doc for kind, doc in msg["sections"] if kind == "body"), None)
        if isinstance(body, dict) and WORK_COMMAND in body:
            return msg["request_id"], self.work.answer()
        if isinstance(body, dict) and body:
            with self.work.lock:
                self.work.commands[command_shape(body, msg["sections"])] += 1
        return super().handle_command(msg)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench <name>|all [--seconds S] [--runs N] [--mongodb-url URL]`: run benchmarks,
print their tables.

Each benchmark starts its own gateway (on its own embedded nx-27017, or on a database of its own
in the MongoDB replica set `--mongodb-url` names) and fake Graph API on 127.0.0.1, measures a
baseline in the same run, and prints medians of `--runs` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import bench.common
from bench import fanout, idle, ingest, queries, send, soak
from bench.common import raise_open_files, table


def _fanout(args: argparse.Namespace) -> str:
    rows = fanout.run(args.subscribers, args.seconds, args.runs, args.clients)
    return table("Fan-out: one publisher, N graphql-transport-ws subscribers of one document",
                 ["subscribers", "execution", "deliveries/s", "vs per subscriber",
                  "gateway CPU µs/delivery", "p50 ms", "p99 ms", "burst", "errors"], rows)


def _memory(args: argparse.Namespace) -> str:
    rows = fanout.memory([n for n in args.subscribers if n >= 1000] or args.subscribers,
                         args.clients)
    return table("Memory: gateway RSS with N idle subscribed websockets",
                 ["websockets", "execution", "RSS before MiB", "RSS after MiB",
                  "KiB per websocket"], rows)


BENCHMARKS: dict[str, Callable[[argparse.Namespace], str]] = {
    "ingest": lambda args: ingest.run(args.seconds, args.runs),
    "queries": lambda args: queries.run(args.seconds, args.runs),
    "fanout": _fanout,
    "memory": _memory,
    "send": lambda args: send.run(args.seconds, args.runs),
    "idle": lambda args: idle.run(args.seconds, args.runs),
    "soak": lambda args: soak.run(args.sizes, args.seconds, args.runs),
}
ALL = [name for name in BENCHMARKS if name != "soak"]  # soak's fill alone takes minutes


def _store(url: str) -> str:
    """Where the gateways keep their data, without credentials."""
    if not url:
        return "embedded nx-27017 each"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="how long each measured run lasts (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is "
                        "reported (default 3)")
    parser.add_argument("--subscribers", type=lambda text: [int(n) for n in text.split(",")],
                        default=[100, 1000, 5000, 10000],
                        help="fan-out sizes (default 100,1000,5000,10000)")
    parser.add_argument("--clients", type=int, default=2,
                        help="websocket client processes (default 2)")
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1000, 10000, 100000],
                        help="soak: messages in the store (default 1000,10000,100000)")
    parser.add_argument("--mongodb-url", default="", help="a MongoDB replica set the gateways "
                        "use instead of their embedded nx-27017 (a database of its own each, "
                        "dropped afterwards); its CPU is not measured")
    args = parser.parse_args()
    raise_open_files()
    bench.common.MONGODB_URL = args.mongodb_url
    print(f"{os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.machine()}; --seconds {args.seconds:g} "
          f"--runs {args.runs}; store: {_store(args.mongodb_url)}", flush=True)
    for name in ALL if args.name == "all" else [args.name]:
        started = time.monotonic()
        print(f"\n{BENCHMARKS[name](args)}\n({name}: {time.monotonic() - started:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()

"""`python -m bench … --mongodb-url URL`: the benchmarks' gateways use an external server (here an
nx-27017 started on its own, which speaks the same protocol as a MongoDB replica set), each on a
database of its own, dropped once it stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

import bench.common
from tests import payloads
from tests.conftest import connect_page, wait_for

ROOT = Path(__file__).resolve().parent.parent


def bench_databases(client: pymongo.MongoClient) -> list[str]:
    return [name for name in client.list_database_names() if name.startswith("bench_")]


def test_a_bench_gateway_keeps_its_data_in_the_external_store(nx_url, graph_server, monkeypatch):
    monkeypatch.setattr(bench.common, "MONGODB_URL", nx_url)
    with pymongo.MongoClient(nx_url) as client:
        with bench.common.gateway(graph_server) as gw:
            assert bench.common.store_pid(gw) is None  # no embedded store started
            page = connect_page(gw, graph_server)["source_channel_id"]
            graph_server.add_profile("8100001", "Ada", "Lovelace")
            assert gw.webhook(payloads.envelope(page, payloads.text(page, "8100001", "hi"))
                              ).status_code == 200
            db = client[gw.env["MONGODB_DATABASE"]]
            wait_for(lambda: db.messages.count_documents({}) == 1)
            assert gw.env["MONGODB_DATABASE"] in bench_databases(client)
        assert gw.env["MONGODB_DATABASE"] not in bench_databases(client)


@pytest.mark.timeout(300)
def test_the_flag_runs_a_benchmark_on_the_external_store(nx_url):
    run = subprocess.run(
        [sys.executable, "-m", "bench", "queries", "--seconds", "0.3", "--runs", "1",
         "--mongodb-url", nx_url],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    header, *rest = run.stdout.splitlines()
    assert "store: mongodb://127.0.0.1:" in header
    rows = [line.split("|") for line in rest if "no cache" in line]
    assert len(rows) == 2
    for row in rows:
        assert float(row[2].replace(",", "")) > 0  # requests/s
        assert row[7].strip() == "–"  # the external store's CPU is not measured
        assert row[-2].strip() == "0"  # failed
    with pymongo.MongoClient(nx_url) as client:
        assert bench_databases(client) == []

"""Start-up, configuration, the embedded store, and what the gateway writes to its log."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests import payloads
from tests.conftest import connect_page, wait_for


def test_cli_takes_host_and_port():
    out = subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    assert "--host" in out.stdout and "--port" in out.stdout


def test_a_bad_setting_stops_start_up_with_a_clear_message():
    env = {**os.environ, "PORT": "eighty", "MONGODB_URL": "mongodb://127.0.0.1:1"}
    out = subprocess.run([sys.executable, "-m", "gateway"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode != 0
    assert "PORT must be a int" in out.stderr or "PORT must be an int" in out.stderr


def test_start_up_line_says_where_it_listens_and_which_store(gateway):
    log = gateway.log()
    assert f"listening on http://127.0.0.1:{gateway.port}" in log
    assert "store: MongoDB mongodb://127.0.0.1:" in log


def test_embedded_store_starts_without_mongodb_url_and_keeps_data(start_gateway, graph, tmp_path):
    data_dir = tmp_path / "data"
    first = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    assert f"store: embedded nx-27017 in {data_dir}" in first.log()
    channel = connect_page(first, graph)
    page = channel["source_channel_id"]
    first.webhook(payloads.envelope(page, payloads.text(page, "777", "kept across restarts")))
    first.stop()
    assert list(data_dir.glob("*.db")), "the embedded store writes SQLite files under DATA_DIR"

    second = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir),
                           MONGODB_DATABASE=first.env["MONGODB_DATABASE"])
    assert [c["id"] for c in second.post("/channels.list").json()["data"]] == [channel["id"]]
    [conversation] = second.post("/conversations.list").json()["data"]
    assert conversation["last_message"]["content"]["message"]["text"] == "kept across restarts"


def test_embedded_store_survives_a_killed_gateway(start_gateway, graph, tmp_path):
    data_dir = tmp_path / "data"
    first = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    channel = connect_page(first, graph)
    first.kill()
    # The embedded server dies with its parent, so the next start owns the files again.
    second = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir),
                           MONGODB_DATABASE=first.env["MONGODB_DATABASE"])
    assert [c["id"] for c in second.post("/channels.list").json()["data"]] == [channel["id"]]


def test_embedded_store_starts_past_a_pid_file_left_by_an_unreaped_server(start_gateway, tmp_path):
    # A server killed with its gateway can stay a zombie when nobody reaps it (PID 1 in many
    # containers): its pid still answers a signal, which nx-27017 alone takes for "running".
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: open(f"/proc/{zombie.pid}/stat").read().split(") ")[1][0] == "Z")
    (data_dir / "nx-27017.pid").write_text(str(zombie.pid))
    try:
        gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
        assert gw.post("/channels.list").json() == {"data": []}
    finally:
        zombie.wait()


def test_health_reports_the_store(gateway):
    response = gateway.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "ok", "subscribers": 0, "unhandled": {}}


def test_no_page_token_reaches_the_log(start_gateway, graph):
    token = "EAAsupersecret0123456789"
    gw = start_gateway(LOG_LEVEL="DEBUG")
    channel = connect_page(gw, graph, token=token)
    page = channel["source_channel_id"]
    graph.add_profile("9001", "Grace", "Hopper")
    gw.webhook(payloads.envelope(page, payloads.text(page, "9001", "hello")))
    [conversation] = gw.post("/conversations.list").json()["data"]
    graph.fail("send", "server_error")
    graph.fail("send", "bad_token")
    gw.post("/messages.send", {"conversation_id": conversation["id"], "message": {"text": "a"}})
    wait_for(lambda: gw.post("/messages.list", {"conversation_id": conversation["id"]})
             .json()["data"][0]["state"] == "failed")
    wait_for(lambda: graph.calls_of("profile"))
    gw.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    gw.stop()
    log = gw.log()
    # The scenario really ran and was logged: connect, retry, failure, disconnect.
    for line in ("connected (page", "retrying in", "failed after 2 attempt(s)", "disconnected"):
        assert line in log, line
    assert token not in log
    assert "access_token" not in log


def test_an_unreachable_store_stops_start_up_with_a_clear_message(tmp_path):
    env = {**os.environ, "MONGODB_URL": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500",
           "PORT": "0"}
    out = subprocess.run([sys.executable, "-m", "gateway"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode != 0
    assert "cannot reach the store (MongoDB mongodb://127.0.0.1:9/" in out.stderr


def test_an_idle_gateway_and_its_embedded_store_stay_idle(start_gateway, tmp_path):
    """nx-27017 answers a change stream's getMore at once instead of waiting for a change; asked
    back to back, the seven idle streams kept a core busy on each side (about 85% each)."""
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(tmp_path / "data"), WORKER_POLL_SECONDS="1")
    store = int(open(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read().split()[0])

    def cpu_seconds(pid: int) -> float:
        fields = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    time.sleep(1)  # start-up is done
    before = cpu_seconds(gw.proc.pid), cpu_seconds(store)
    time.sleep(4)
    used = [(cpu_seconds(pid) - start) / 4 for pid, start in zip((gw.proc.pid, store), before)]
    assert used[0] < 0.3 and used[1] < 0.3, \
        f"share of a core: gateway {used[0]:.0%}, store {used[1]:.0%}"

"""The embedded store: the owner's alone (private files, no TCP port), restarted when it dies, and
never holding the gateway's shutdown past 10 seconds."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests import payloads
from tests.conftest import GatewayProcess, connect_page, wait_for
from tests.test_graphql import CREATED, subscribed
from tests.ws import TRANSPORT_WS, GraphQLSocket


def store_pid(data_dir: Path) -> int:
    return int((data_dir / "nx-27017.pid").read_text())


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def stores_serving(data_dir: Path) -> list[int]:
    """Live processes serving `data_dir` (by their command line)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if str(data_dir).encode() in command and alive(int(pid)):
                found.append(int(pid))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_listeners() -> set[int]:
    """Inodes of every listening TCP socket on the machine (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as file:
            for line in list(file)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    inodes.add(int(fields[9]))
    return inodes


def unix_listeners() -> dict[int, str]:
    """Inode -> path of every listening Unix socket on the machine."""
    listeners = {}
    with open("/proc/net/unix") as file:
        for line in list(file)[1:]:
            fields = line.split()
            if int(fields[3], 16) & 0x10000 and len(fields) > 7:  # __SO_ACCEPTCON: listening
                listeners[int(fields[6])] = fields[7]
    return listeners


def post_quietly(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(url, json={}, timeout=30)


def stop_timed(gw: GatewayProcess) -> float:
    """SIGTERM the gateway; how long it took to exit (SIGKILL after 30 s, as a failure)."""
    assert gw.proc and gw.proc.poll() is None
    return gw.stop(timeout=30)


def test_data_dir_and_its_files_are_the_owners_only(start_gateway, graph, tmp_path):
    # Data left by an older version, with the usual umask's modes.
    data_dir = tmp_path / "data"
    (data_dir / "old").mkdir(parents=True)
    data_dir.chmod(0o755)
    (data_dir / "old").chmod(0o755)
    (data_dir / "notes.txt").write_text("left here")
    (data_dir / "notes.txt").chmod(0o644)
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    connect_page(gw, graph, token="EAAprivate0123")  # the store writes its files

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    entries = list(data_dir.rglob("*"))
    assert any(path.suffix == ".db" for path in entries)
    modes = {str(path.relative_to(data_dir)): oct(stat.S_IMODE(path.lstat().st_mode))
             for path in entries}
    assert modes == {path: ("0o700" if (data_dir / path).is_dir() else "0o600")
                     for path in modes}, modes

    if os.geteuid() == 0 and os.path.exists("/usr/bin/python3"):
        # Another local user can neither read the files nor connect to the store.
        sock = gw.log().split("(Unix socket ", 1)[1].split(",", 1)[0]
        db_file = next(path for path in entries if path.suffix == ".db")
        probe = (
            "import socket, sys\n"
            "for what, attempt in (('read', lambda: open(sys.argv[1], 'rb').read(1)),\n"
            "                      ('connect', lambda: socket.socket(socket.AF_UNIX)"
            ".connect(sys.argv[2]))):\n"
            "    try:\n"
            "        attempt(); print(what, 'allowed')\n"
            "    except PermissionError:\n"
            "        print(what, 'refused')\n"
        )
        out = subprocess.run(["/usr/bin/python3", "-c", probe, str(db_file), sock],
                             capture_output=True, text=True, timeout=30,
                             user=65534, group=65534, extra_groups=[])
        assert out.stdout.split("\n")[:2] == ["read refused", "connect refused"], out


def test_the_store_listens_on_no_tcp_port(start_gateway, tmp_path):
    data_dir = tmp_path / "data"
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    sockets = socket_inodes(store_pid(data_dir))
    assert not sockets & tcp_listeners(), "the embedded store listens on a TCP port"
    [path] = [path for inode, path in unix_listeners().items() if inode in sockets]
    assert f"Unix socket {path}, owner only; no TCP port" in gw.log()
    assert stat.S_IMODE(os.stat(Path(path).parent).st_mode) == 0o700


def test_a_socket_path_too_long_for_unix_sockets_goes_to_a_private_directory(
        start_gateway, graph, tmp_path):
    data_dir = tmp_path / ("d" * 100)
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    connect_page(gw, graph)
    path = gw.log().split("(Unix socket ", 1)[1].split(",", 1)[0]
    assert len(path) < 108 and not path.startswith(str(data_dir))
    assert stat.S_IMODE(os.stat(Path(path).parent).st_mode) == 0o700
    gw.stop()
    assert not Path(path).parent.exists(), "the private socket directory is removed at exit"


def test_a_killed_store_is_started_again_and_everything_resumes(start_gateway, graph, tmp_path):
    data_dir = tmp_path / "data"
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir), STORE_TIMEOUT_SECONDS="1")
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    gw.webhook(payloads.envelope(page, payloads.text(page, "4201", "before")))
    conversation = gw.post("/conversations.list").json()["data"][0]["id"]
    with GraphQLSocket(gw.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("live", CREATED, {"conversationId": conversation})
        subscribed(gw, 1)

        first = store_pid(data_dir)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: gw.http.get("/health").status_code == 503, timeout=10)
        wait_for(lambda: gw.http.get("/health").status_code == 200, timeout=10)
        assert store_pid(data_dir) != first
        assert "the embedded store (nx-27017, pid" in gw.log()

        stored = gw.webhook(payloads.envelope(page, payloads.text(page, "4201", "after")))
        assert stored.status_code == 200
        texts = [m["content"]["message"]["text"] for m in
                 gw.post("/messages.list", {"conversation_id": conversation}).json()["data"]]
        assert sorted(texts) == ["after", "before"]
        # The subscription opened before the kill hears of the message posted after it.
        created = ws.next("live", timeout=15)["data"]["messageCreated"]
        assert created["content"]["message"]["text"] == "after"

    assert stop_timed(gw) < 10


def test_a_store_that_keeps_dying_is_started_again_later_each_time(start_gateway, tmp_path):
    data_dir = tmp_path / "data"
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))

    def running_store() -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = store_pid(data_dir)
            if alive(pid) and gw.http.get("/health").status_code == 200:
                return pid
        return None

    for _ in range(3):
        pid = wait_for(running_store)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: running_store() not in (None, pid), timeout=15)
    delays = re.findall(r"exited with code -9; starting it again on the same data in (\S+)s",
                        gw.log())
    assert delays == ["0.5", "1.0", "2.0"]


def stop_with_a_request_waiting(gw) -> float:
    """SIGTERM while a request waits on the (stopped) store; how long the gateway took to exit."""
    pending = threading.Thread(target=post_quietly, args=(gw.url + "/channels.list",),
                               daemon=True)
    pending.start()
    time.sleep(0.5)
    return stop_timed(gw)


def test_shutdown_is_bounded_when_the_store_is_stopped(start_gateway, graph, tmp_path):
    data_dir = tmp_path / "data"
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    connect_page(gw, graph)
    store = store_pid(data_dir)
    os.kill(store, signal.SIGSTOP)
    try:
        took = stop_with_a_request_waiting(gw)
        assert took < 10, f"the gateway took {took:.1f}s to exit"
        assert not alive(store), "the stopped store was left behind"
    finally:
        if alive(store):
            os.kill(store, signal.SIGKILL)


def test_shutdown_while_the_store_is_being_restarted_leaves_no_store_behind(
        start_gateway, graph, tmp_path):
    data_dir = tmp_path / "data"
    gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data_dir))
    connect_page(gw, graph)
    os.kill(store_pid(data_dir), signal.SIGKILL)
    time.sleep(0.7)  # the supervisor is starting it again
    assert stop_timed(gw) < 10
    assert not stores_serving(data_dir), "a store was left behind"
    assert not (data_dir / "nx-27017.pid").exists()


def test_shutdown_is_bounded_when_an_external_store_is_stopped(start_gateway, graph, own_nx):
    # The same bound with MONGODB_URL: nothing to kill, the gateway leaves what still waits.
    gw = start_gateway(MONGODB_URL=own_nx.url)
    connect_page(gw, graph)
    own_nx.proc.send_signal(signal.SIGSTOP)
    try:
        took = stop_with_a_request_waiting(gw)
        assert took < 10, f"the gateway took {took:.1f}s to exit"
    finally:
        own_nx.proc.send_signal(signal.SIGCONT)

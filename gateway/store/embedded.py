"""The embedded store: an nx-27017 server (MongoDB wire protocol over SQLite files) run as a child.

Used when no `MONGODB_URL` is set, so the gateway runs with nothing else installed and keeps its
data under `DATA_DIR`. The store holds page tokens, so it is the owner's alone: `DATA_DIR` is 0700
and every file in it 0600 (fixed at each start, for data left by older versions too), the child
runs with umask 077, and it listens on no TCP port but on a Unix socket in that private directory
(nx-27017 itself has neither authentication nor a socket option; gateway/store/nxserve.py serves
its handler on one). The child is supervised: if it dies it is started again on the same data and
the same socket, so the driver reconnects by itself. It is also tied to the gateway's life: on
Linux it is asked to die with its parent, so a killed gateway leaves no server holding the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from gateway import retry

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
SOCKET_NAME = "nx-27017.sock"
MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108, with the closing NUL
RESTART_DELAY = 0.5  # seconds before the first restart; doubled each time it dies again soon
MAX_RESTART_DELAY = 30.0
STABLE_SECONDS = 60.0  # a server that ran this long before dying starts the back-off afresh


def _in_child() -> None:  # runs in the child between fork and exec
    os.umask(0o077)  # every file the server creates is the owner's only
    if sys.platform == "linux":  # die with the parent
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def lock_down(directory: Path) -> int:
    """Create `directory` 0700 if needed, and make it and everything in it the owner's only:
    directories 0700, files 0600. Symbolic links are left alone (never followed). Returns how
    many modes were changed."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed = 0
    for root, dirs, files in os.walk(directory):
        for path in [root, *(os.path.join(root, name) for name in dirs + files)]:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue
            wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if stat.S_IMODE(info.st_mode) != wanted:
                try:
                    os.chmod(path, wanted)
                    changed += 1
                except OSError as exc:
                    log.warning("cannot make %s private (mode %o): %s", path,
                                stat.S_IMODE(info.st_mode), exc.strerror)
    return changed


class EmbeddedServer:
    """An nx-27017 child serving `data_dir` on a private Unix socket, restarted if it dies."""

    def __init__(self, data_dir: str, measure_work: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.measure_work = measure_work  # see gateway/store/nxserve.py
        self.socket_path = self.data_dir / SOCKET_NAME
        self.restarts = 0  # how many times the supervisor has started the server again
        self._private_dir: Path | None = None  # holds the socket when DATA_DIR's path is too long
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        return f"mongodb://{quote(str(self.socket_path), safe='')}/?directConnection=true"

    async def start(self) -> None:
        changed = lock_down(self.data_dir)
        if changed:
            log.warning("%s held %d entr%s other users could read or enter; now the owner's "
                        "only (directories 0700, files 0600)", self.data_dir, changed,
                        "y" if changed == 1 else "ies")
        await self._wait_for_previous_server()
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            # A socket's path has at most 107 bytes: use a private directory of its own (0700).
            self._private_dir = Path(tempfile.mkdtemp(prefix="gateway-store-"))
            self.socket_path = self._private_dir / SOCKET_NAME
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="embedded-store")

    async def _spawn(self) -> None:
        """Start the server and wait until it accepts connections on the socket. It is
        `_process` from the moment it exists, so that `stop` ends it whenever it is called."""
        log_path = self.data_dir / "nx-27017.log"
        self.socket_path.unlink(missing_ok=True)  # left by a server that was killed
        output = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.store.nxserve",
                "--data-dir", str(self.data_dir),
                "--socket", str(self.socket_path),
                "--pid-file", str(self.data_dir / "nx-27017.pid"),
                "--log-file", str(log_path), *(["--measure-work"] if self.measure_work else []),
                stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output,
                preexec_fn=_in_child,
            )
        finally:
            os.close(output)
        self._process = process
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if process.returncode is not None:
                raise RuntimeError(
                    f"the embedded store (nx-27017) exited with code {process.returncode}"
                    f" before it listened; the end of {log_path}:\n{_tail(log_path)}"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_unix_connection(str(self.socket_path))
                writer.close()
                return
            if asyncio.get_running_loop().time() > deadline:
                await _end(process, 5)
                raise RuntimeError(f"the embedded store did not listen within {START_TIMEOUT:.0f}s")
            await asyncio.sleep(0.05)

    async def _supervise(self) -> None:
        """Start the server again whenever it dies, on the same data and socket, backing off
        while it keeps dying."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            process = self._process
            assert process is not None
            started = loop.time()
            code = await process.wait()
            if self._stopping:
                return
            failures = 1 if loop.time() - started > STABLE_SECONDS else failures + 1
            delay = retry.delay(RESTART_DELAY, failures, MAX_RESTART_DELAY)
            log.warning("the embedded store (nx-27017, pid %d) exited with code %s; starting it "
                        "again on the same data in %.1fs", process.pid, code, delay)
            await asyncio.sleep(delay)
            try:
                await self._wait_for_previous_server()
                await self._spawn()
            except (OSError, RuntimeError) as exc:
                log.error("the embedded store could not be started again: %s", exc)
                continue  # self._process is a dead one: back off further and try again
            self.restarts += 1
            log.warning("the embedded store is back (pid %d, restart %d)",
                        self._process.pid if self._process else 0, self.restarts)

    async def _wait_for_previous_server(self) -> None:
        """A server left by a gateway that was just killed is still shutting down: let it.

        Once it is gone, its pid file is removed: nx-27017 refuses to start while the pid in that
        file answers a signal, and a server killed with its parent can linger as a zombie that
        nobody reaps (PID 1 in many containers does not), which would block every later start.
        """
        pid_file = self.data_dir / "nx-27017.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            return
        deadline = asyncio.get_running_loop().time() + 10
        while _alive(pid):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"another nx-27017 (pid {pid}) still serves {self.data_dir}; stop it first"
                )
            await asyncio.sleep(0.1)
        pid_file.unlink(missing_ok=True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop supervising, ask the server to stop, and kill it if it is not gone within
        `timeout` seconds (SIGKILL ends even a stopped process)."""
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        process, self._process = self._process, None
        if process is not None:
            await _end(process, timeout)
        if self._private_dir:
            shutil.rmtree(self._private_dir, ignore_errors=True)


async def _end(process: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM, then SIGKILL once `timeout` seconds (less a moment kept for it) have passed."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
        os.kill(process.pid, signal.SIGCONT)  # a stopped server stops for good
    try:
        await asyncio.wait_for(process.wait(), max(timeout - 0.5, 0.1))
    except TimeoutError:
        log.warning("the embedded store (pid %d) did not stop in time; killing it", process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped), or a reused pid, counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ", 1)[1][:1] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read()
            return b"nx_27017" in command or b"gateway.store.nxserve" in command
    except (OSError, IndexError):
        return True


def _tail(path: Path, size: int = 2000) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")
    return ""

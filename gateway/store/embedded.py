"""The embedded store: an nx-27017 server (MongoDB wire protocol over SQLite files) run as a child.

Used when no `MONGODB_URL` is set, so the gateway runs with nothing else installed and keeps its
data under `DATA_DIR`. The child is tied to the gateway's life: on Linux it is asked to die with
its parent, so a killed gateway leaves no server holding the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedServer:
    """An nx-27017 child process serving `data_dir` on a free loopback port."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self._wait_for_previous_server()
        self.port = free_port()
        log_path = self.data_dir / "nx-27017.log"
        with open(log_path, "ab") as output:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nx_27017.nx_27017",
                "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1", "-p", str(self.port),
                "--pid-file", str(self.data_dir / "nx-27017.pid"),
                "--log-file", str(log_path),
                stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if self._process.returncode is not None:
                raise RuntimeError(
                    f"the embedded store (nx-27017) exited with code {self._process.returncode}"
                    f" before it listened; the end of {log_path}:\n{_tail(log_path)}"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError(f"the embedded store did not listen within {START_TIMEOUT:.0f}s")
            await asyncio.sleep(0.05)

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

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


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
            return b"nx_27017" in cmdline.read()
    except (OSError, IndexError):
        return True


def _tail(path: Path, size: int = 2000) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")
    return ""

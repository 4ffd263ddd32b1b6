"""Background processes that outlive the command that started them.

A process is found again through its pid file; the pid only counts while the process's
command line still contains a marker (a path unique to the service), so a recycled pid
never makes an unrelated process look like the service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from heartbeat_localstack.exceptions import LocalStackError

logger = logging.getLogger(__name__)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a text file, or "" when it does not exist."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def children(pid: int) -> list[int]:
    """The pids of the live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def send_signal(pid: int, signum: int) -> bool:
    """Send `signum` to `pid`; False when the process is already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _cmdline(pid: int) -> str | None:
    """The command line of a live, non-zombie process, or None when there is none."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return None


class DetachedProcess:
    """One background process of a service, tracked through `pid_file`."""

    def __init__(self, pid_file: Path, marker: str) -> None:
        self.pid_file = pid_file
        self.marker = marker
        self._popen: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        """The pid of the running process, or None when it does not run."""
        if self._popen is not None:
            if self._popen.poll() is None:
                return self._popen.pid
            self._popen = None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        cmdline = _cmdline(pid)
        if cmdline is None or self.marker not in cmdline:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def spawn(
        self, argv: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
    ) -> int:
        """Start `argv` in its own session, output appended to `log_path`; returns the pid."""
        with log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")
        logger.debug("started %s as pid %d", argv[0], self._popen.pid)
        return self._popen.pid

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Nothing to do if it does not run."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(timeout):
                logger.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout)
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(10.0)
        self._popen = None
        self.pid_file.unlink(missing_ok=True)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL, as a crash would (no shutdown hook runs); returns once the process is gone."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            if not self._wait_gone(timeout):
                raise LocalStackError(f"pid {pid} still runs {timeout:.0f} s after SIGKILL")
        self._popen = None
        self.pid_file.unlink(missing_ok=True)

    def _signal(self, pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    def _wait_gone(self, timeout: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                return True
            time.sleep(0.1)
        return self.pid() is None

"""The real `tofu-tui` console in a pseudo-terminal, as an operator on SSH runs it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

from tests.conftest import cli_env

_ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Terminal:
    def __init__(self, args: list[str], env: dict[str, str], size: tuple[int, int] = (160, 48)) -> None:
        master, slave = pty.openpty()
        columns, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tofu_tui", *args], stdin=slave, stdout=slave, stderr=slave,
            env=cli_env({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows), **env}),
            close_fds=True, start_new_session=True)
        os.close(slave)
        self.master = master
        self.raw = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.raw += data

    @property
    def text(self) -> str:
        return _ANSI.sub(b"", self.raw).decode(errors="replace")

    def wait_for(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text:
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)
                if needle in self.text:
                    return
                raise AssertionError(f"console exited {self.proc.returncode} before {needle!r}:\n{self.text[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} never shown:\n{self.text[-2000:]}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def hang_up(self) -> None:
        """What a dropped SSH session does: the terminal goes away, then SIGHUP."""
        self._close_master()
        os.kill(self.proc.pid, signal.SIGHUP)

    def _close_master(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(2)
        self._close_master()

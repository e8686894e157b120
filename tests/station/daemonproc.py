"""Run the real `tofu-tui --headless` as a subprocess and follow its JSON-lines log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import cli_env


class Daemon:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        env = cli_env({"TOFU_TUI_HOME": str(home), **(extra_env or {})})
        self.proc = subprocess.Popen([sys.executable, "-m", "tofu_tui", "--headless"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.lines.append({"event": "unparsed", "line": line})

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.proc.poll() is not None and seen == len(self.lines):
                self._reader.join(2)
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.stderr()}\n{''.join(self.raw)}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; log:\n{''.join(self.raw[-40:])}")

    def event(self, name: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        return self.wait_for(lambda line: line.get("event") == name and all(line.get(k) == v for k, v in fields.items()),
                             timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

"""`tofu-tui --headless`: the unattended station daemon, logging JSON lines on stdout.

One object a line: `ts`, `level`, `event`, then the event's fields. Exit 75 (or the
status in TOFU_TUI_REVOKED_EXIT, which the launchd job sets to 0) when the
server revoked the credentials (a supervisor must not restart it), 0 on a clean stop.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import signal
import sys
import threading
import traceback
from typing import Any, TextIO

from tofu_tui.models.events import Event, format_ts, utc_now

_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}


class JsonLines:
    """Writes the headless log; safe from any thread."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def say(self, level: str, event: str, fields: dict[str, Any]) -> None:
        line = json.dumps({"ts": format_ts(utc_now()), "level": level, "event": event, **fields}, default=str)
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass  # stdout gone (journald restarting): keep running

    def event(self, event: Event) -> None:
        data = event.model_dump(mode="json", exclude_none=True)
        data.pop("ts", None)
        kind = data.pop("type")
        level = "info"
        if kind == "phase_log":
            level = _LEVELS.get(data.get("level", "INFO"), "info")
            data["log_level"] = data.pop("level", "INFO")
        elif kind in ("error", "upload_parked") or (kind == "deployment_pulled" and data.get("status") == "failed"):
            level = "error" if kind == "error" else "warning"
        elif kind in ("upload_backoff",) or (kind == "connectivity_changed" and not data.get("connected")):
            level = "warning"
        if kind == "run_finished":
            run = data.pop("run", {}) or {}
            data["serial_number"] = run.get("serial_number")
            data["procedure_id"] = run.get("procedure_id")
        self.say(level, kind, data)


class _LogHandler(logging.Handler):
    def __init__(self, lines: JsonLines) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info:  # a bug logged with `log.exception`: its traceback is what a report needs
            fields["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        self.lines.say(record.levelname.lower(), "log", fields)


def run_daemon() -> int:
    from tofu_tui.station.daemon import StationDaemon, process_exit_code
    from tofu_tui.station.paths import station_paths

    if hasattr(faulthandler, "register"):  # `kill -USR1 PID` dumps every thread's stack to stderr
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    lines = JsonLines(sys.stdout)
    logging.getLogger().addHandler(_LogHandler(lines))
    daemon = StationDaemon(station_paths(), say=lines.say, event_sinks=[lines.event])
    try:
        return process_exit_code(asyncio.run(daemon.run()))
    except KeyboardInterrupt:
        return 130

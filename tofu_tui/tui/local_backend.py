"""The console running the station engine in its own process (no daemon was running).

The engine is the same `StationDaemon` that `tofu-tui --headless` runs, control socket
included: `tofu-tui status` and a second console attach to this one instead of
starting a second engine against the same state. Its log goes to
`logs/station.log` under the station's data folder, since the terminal is the console's.

Quitting the console stops the engine. A run still in flight is stopped the way the
operator's stop key does it (teardown runs, the run ends ABORTED and is queued for
upload like any other); the console asks before quitting in that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
from collections.abc import AsyncIterator
from typing import Any

from tofu_tui.models.commands import Command
from tofu_tui.models.events import Event, format_ts, utc_now
from tofu_tui.models.status import StationStatus
from tofu_tui.station.config import ConfigError, load_config, load_credentials
from tofu_tui.station.control import CommandRefused
from tofu_tui.station.daemon import StationDaemon
from tofu_tui.station.paths import StationPaths, station_paths
from tofu_tui.tui.backend import BackendMode, BackendUnavailable

STOP_RUN_GRACE_S = 10.0  # a stopped run's teardown gets this long before it is killed
SHUTDOWN_S = 15.0
LOG_BYTES = 1_000_000

_STARTUP_FAILURES = {"daemon_already_running", "not_enrolled", "state_db_damaged"}


class _StationLog:
    """The engine's JSON-lines log (what `--headless` prints), to a rotating file."""

    def __init__(self, paths: StationPaths) -> None:
        paths.logs.mkdir(parents=True, exist_ok=True)
        self.handler = logging.handlers.RotatingFileHandler(
            paths.logs / "station.log", maxBytes=LOG_BYTES, backupCount=1, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger = logging.Logger("tofu_tui.in_process_station")
        self.logger.addHandler(self.handler)
        # Warnings of the station's own modules would otherwise go to stderr, under the console.
        self.handler.setLevel(logging.INFO)
        logging.getLogger("tofu_tui").addHandler(self.handler)
        self.last_error: str | None = None

    def say(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.logger.log(logging.getLevelNamesMapping().get(level.upper(), logging.INFO),
                        json.dumps({"ts": format_ts(utc_now()), "level": level, "event": event, **fields}, default=str))
        if level == "error" and fields.get("message"):
            self.last_error = str(fields["message"])

    def close(self) -> None:
        logging.getLogger("tofu_tui").removeHandler(self.handler)
        self.handler.close()


async def start(paths: StationPaths | None = None) -> LocalBackend:
    """Start this station's engine in the running event loop, ready for the console."""
    paths = paths or station_paths()
    try:
        load_config(paths)
        load_credentials(paths)
    except ConfigError as exc:
        raise BackendUnavailable(f"No station daemon is running, and the console cannot run this station: {exc}") \
            from None
    log = _StationLog(paths.ensure())
    # The console owns the terminal and its signals (SIGHUP of a lost SSH session ends
    # it, and quitting stops the engine through close()).
    daemon = StationDaemon(paths, say=log.say, handle_signals=False)
    task = asyncio.create_task(daemon.run(), name="station-engine")
    started = asyncio.create_task(daemon.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if not daemon.started.is_set():
        started.cancel()
        log.close()
        with contextlib.suppress(Exception):
            task.result()
        raise BackendUnavailable(log.last_error or "The station engine did not start; see "
                                 f"{paths.logs / 'station.log'}.")
    return LocalBackend(daemon, task, log)


class LocalBackend:
    """`StationBackend` over a `StationDaemon` running in this process."""

    def __init__(self, daemon: StationDaemon, task: asyncio.Task[int], log: _StationLog) -> None:
        self.daemon = daemon
        self.task = task
        self.log = log
        self._closed = False

    @property
    def mode(self) -> BackendMode:
        return "in-process"

    def _gone(self) -> BackendUnavailable:
        reason = self.log.last_error or "it was asked to stop"
        return BackendUnavailable(f"The station engine stopped: {reason}. Restart tofu-tui.")

    async def status(self) -> StationStatus:
        if self.task.done():
            raise self._gone()
        return self.daemon.status()  # on the loop, as the control socket does: its SQLite is the loop's

    async def events(self) -> AsyncIterator[Event]:
        if self.task.done():
            raise self._gone()
        queue = self.daemon.subscribe()
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self.daemon.unsubscribe(queue)
        if not self._closed:
            raise self._gone()

    async def send(self, command: Command) -> str | None:
        if self.task.done():
            return str(self._gone())
        try:
            await self.daemon.handle_command(command)
        except CommandRefused as exc:
            return str(exc)
        except Exception as exc:  # the console shows it; the engine keeps running
            return f"{command.name} failed: {type(exc).__name__}: {exc}"
        return None

    async def close(self) -> None:
        """Stop the engine: a run in flight is stopped (killed if its teardown hangs),
        queued, and the engine exits; its control socket is removed."""
        if self._closed:
            return
        self._closed = True
        try:
            flight = self.daemon.in_flight
            if flight is not None and not self.task.done():
                flight.handle.stop()
                if flight.task is not None:
                    finished, _ = await asyncio.wait({flight.task}, timeout=STOP_RUN_GRACE_S)
                    if not finished:
                        flight.handle.kill()
            if not self.task.done():
                self.daemon.request_stop("the operator quit the console")
            done, _ = await asyncio.wait({self.task}, timeout=SHUTDOWN_S)
            if not done:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
        finally:
            self.log.close()

"""The station engine: one asyncio process per station.

It pulls deployments, runs procedures on `Run` commands (dashboard stream, heartbeat
replies, control socket), persists every finished run to the upload queue before
trying to upload it, drains the queue, keeps the station present and serves the
local control socket that the console and the CLI attach to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import ValidationError

from tofu_tui import __version__
from tofu_tui.models.commands import (
    Command,
    ExitCommand,
    KillCommand,
    PullCommand,
    QueueDropCommand,
    QueueRetryCommand,
    RunCommand,
    StopCommand,
    UiResponseCommand,
    parse_command,
)
from tofu_tui.models.events import ConnectivityChanged, ErrorEvent, Event, PhaseLog, RunFinished
from tofu_tui.models.status import StationStatus
from tofu_tui.procedure.execute import RunOptions, start_run
from tofu_tui.procedure.load import ProcedureLoadError, load_procedure
from tofu_tui.station import state_db, unqueued
from tofu_tui.station.api_client import ApiClient, ApiError, Unauthorized
from tofu_tui.station.bus import EventBus, RunReplay
from tofu_tui.station.config import (
    ConfigError,
    Credentials,
    StationConfig,
    load_config,
    load_credentials,
)
from tofu_tui.station.control import CommandRefused, ControlServer
from tofu_tui.station.deployments import ActiveVersion, DeploymentManager, ProcedureUnavailable
from tofu_tui.station.housekeeping import prune_run_logs, remove_orphan_attachments
from tofu_tui.station.ledger import CONNECTED, RUNNING, Ledger
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.queue import AttachmentFile, Drainer, QueueError, UploadQueue
from tofu_tui.station.seen_commands import SeenCommands
from tofu_tui.station.service import REVOKED_EXIT_ENV
from tofu_tui.station.stream import Presence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_REVOKED = 75  # EX_TEMPFAIL: the service unit must not restart us (RestartPreventExitStatus)


def process_exit_code(code: int) -> int:
    """The process exit status for the daemon's result `code`: 75 for a revoked key,
    unless the service definition asked for another (`service.REVOKED_EXIT_ENV`, launchd)."""
    if code != EXIT_REVOKED:
        return code
    value = os.environ.get(REVOKED_EXIT_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) < 256 else code

LEDGER_TICK_S = 15.0
LOOP_RESTART_S = 5.0  # a background loop that crashed starts again after this long

# level, event name, fields
Say = Callable[[str, str, dict[str, Any]], None]


@dataclasses.dataclass
class InFlight:
    handle: Any  # tofu_tui.procedure.execute.RunHandle
    version: ActiveVersion
    execution_id: str
    task: asyncio.Task[None] | None = None


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for `event` (then clear it) or `timeout`; cancellation is never swallowed
    (asyncio.wait_for on 3.11 can lose a cancel that races with the event)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return
    event.clear()


class StationDaemon:
    def __init__(self, paths: StationPaths, *, say: Say | None = None,
                 event_sinks: list[Callable[[Event], None]] | None = None, handle_signals: bool = True) -> None:
        """`handle_signals=False` when embedded (the console running the engine in its
        own process): the host calls `request_stop()` itself. `started` is set once the
        control socket listens and `status()`, `subscribe()`, `handle_command()` work."""
        self.paths = paths
        self.handle_signals = handle_signals
        self.started = asyncio.Event()
        self.say: Say = say or (lambda level, event, fields: None)
        self.extra_sinks = event_sinks or []
        self.exit_code = EXIT_OK
        self.started_at = datetime.now(UTC)
        self.in_flight: InFlight | None = None
        self.signals = 0
        self.stopping = False
        self.last_contact: datetime | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self._drain_now = asyncio.Event()
        self._pull_now = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._run_logs: dict[str, Any] = {}
        # Station-scoped plug instances live as long as the daemon (procedure-format §5),
        # not one run: made at the first run that needs them.
        self.station_plugs: Any = None
        self._starting = False

    # --- lifecycle --------------------------------------------------------------------
    async def run(self) -> int:
        self.paths.ensure()
        os.environ.pop("TOFU_TUI_TOKEN", None)  # never inherited by a procedure's processes
        lock = FileLock(str(self.paths.daemon_lock), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            self.say("error", "daemon_already_running", {
                "message": "A station daemon is already running for this station; attach with `tofu-tui`, "
                           "or stop it first (`tofu-tui service stop`)."})
            return EXIT_FAILURE
        try:
            return await self._run_locked()
        finally:
            lock.release()

    async def _run_locked(self) -> int:
        try:
            self.config: StationConfig = load_config(self.paths)
            self.credentials: Credentials = load_credentials(self.paths)
        except ConfigError as exc:
            self.say("error", "not_enrolled", {"message": str(exc)})
            return EXIT_REVOKED
        try:
            self.queue = UploadQueue(self.paths, self.config.installation_id)
            self.drain_queue = UploadQueue(self.paths, self.config.installation_id)
            self.deployments = DeploymentManager(
                self.paths, state_db.connect(self.paths.state_db), git=self.config.git, credentials=self.credentials,
                keep_versions=self.config.keep_versions, emit=self._publish)
            self.ledger = Ledger(state_db.connect(self.paths.state_db), tick_s=LEDGER_TICK_S)
        except state_db.StateDbError as exc:
            self.say("error", "state_db_damaged", {"message": str(exc)})
            return EXIT_FAILURE
        key = self.credentials.api_key.get_secret_value()
        self.client = ApiClient(self.config.server_url, key, ca_cert=self.config.ca_cert,
                                user_agent=f"tofu-tui/{__version__}")
        loop = asyncio.get_running_loop()
        self.bus = EventBus(loop)
        self.presence = Presence(self.config.server_url, key, self.client, on_command=self._remote_command,
                                 on_connectivity=self._connectivity, on_revoked=self._revoked,
                                 heartbeat_body=self._heartbeat_body,
                                 heartbeat_interval_s=self.config.heartbeat_interval_s, ca_cert=self.config.ca_cert,
                                 seen=SeenCommands(state_db.connect(self.paths.state_db)))
        self.drainer = Drainer(self.drain_queue, self.client, self._publish)
        for sink in self.extra_sinks:
            self.bus.add_sink(sink)
        self.bus.add_sink(self.presence.publish)
        self.bus.add_sink(self._run_log)
        self.run_replay = RunReplay()
        self.bus.add_sink(self.run_replay.record)
        self._close_interrupted_run()
        self._housekeeping(startup=True)
        self._requeue_kept()
        self.control = ControlServer(self.paths, self, say=self.say)
        await self.control.start()
        if self.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, self._on_signal)
        self.ledger.mark(RUNNING)
        self.say("info", "daemon_started", {"station_id": self.config.station_id,
                                            "station_name": self.config.station_name,
                                            "server_url": self.config.server_url, "pid": os.getpid(),
                                            "queue": self.queue.counts().model_dump()})
        self._tasks = [asyncio.create_task(self._supervised(name, loop_fn)) for name, loop_fn in (
            ("deployments", self._poll_loop), ("drain", self._drain_loop), ("presence", self.presence.run),
            ("ledger", self._ledger_loop))]
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()
        return self.exit_code

    async def _shutdown(self) -> None:
        if self.in_flight is not None and self.in_flight.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.in_flight.task), 5)
        for task in self._tasks:
            task.cancel()
        # A loop blocked in a worker thread (a long git fetch) must not hold the exit.
        await asyncio.wait(self._tasks, timeout=5)
        await self.control.close()
        if self.station_plugs is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.station_plugs.close)
        self.ledger.mark(RUNNING)
        if self.presence.connected:
            self.ledger.close(CONNECTED)
        self.bus.close()
        self.client.close()
        self.say("info", "daemon_stopped", {"exit_code": self.exit_code})

    def _station_plugs(self) -> Any:
        if self.station_plugs is None:
            from tofu_tui.procedure.plugs import StationPlugs

            self.station_plugs = StationPlugs(log_dir=self.paths.logs / "station-plugs")
        return self.station_plugs

    def request_stop(self, reason: str, exit_code: int | None = None) -> None:
        """Stop taking runs; exit once the run in flight (if any) has finished."""
        if exit_code is not None and self.exit_code == EXIT_OK:
            self.exit_code = exit_code
        if not self.stopping:
            self.stopping = True
            self.say("info", "daemon_stopping", {"reason": reason,
                                                 "run_in_flight": self.in_flight.execution_id
                                                 if self.in_flight else None})
        if self.in_flight is None:
            self._stop.set()

    def _on_signal(self) -> None:
        self.signals += 1
        if self.signals == 1:
            self.request_stop("signal: the run in flight finishes first (signal again to cancel it)")
        elif self.signals == 2 and self.in_flight is not None:
            self.say("warning", "run_cancelling", {"execution_id": self.in_flight.execution_id})
            self.in_flight.handle.stop()
        else:
            if self.in_flight is not None:
                self.say("warning", "run_killed", {"execution_id": self.in_flight.execution_id})
                self.in_flight.handle.kill()
            self._stop.set()

    def _revoked(self, message: str) -> None:
        self.say("error", "credentials_revoked", {
            "message": f"{message}. The station key was revoked: generate a new setup token from the dashboard "
                       "and run `tofu-tui login`."})
        self.request_stop("credentials revoked", EXIT_REVOKED)

    # --- events -----------------------------------------------------------------------
    def _publish(self, event: Event) -> None:
        self.bus.publish(event)

    def _run_log(self, event: Event) -> None:
        """One JSONL file per run under logs/, kept open while its run is in flight."""
        if not event.execution_id or event.type.startswith(("upload_", "deployment_", "connectivity")):
            return
        line = event.model_dump_json() + "\n"
        handle = self._run_logs.get(event.execution_id)
        if handle is None:
            self.paths.logs.mkdir(parents=True, exist_ok=True)
            path = self.paths.logs / f"{event.execution_id}.jsonl"
            if self.in_flight is None or self.in_flight.execution_id != event.execution_id:
                with path.open("a", encoding="utf-8") as late:  # after its run ended
                    late.write(line)
                return
            handle = path.open("a", encoding="utf-8")
            self._run_logs[event.execution_id] = handle
        handle.write(line)
        if event.type in ("phase_finished", "run_finished"):
            handle.flush()

    def _mark_in_flight(self, execution_id: str | None) -> None:
        """Remember the run in flight in state.db, so the next start knows a crash cut it."""
        if execution_id is None:
            self.queue.conn.execute("DELETE FROM meta WHERE key = 'run_in_flight'")
        else:
            self.queue.conn.execute("INSERT INTO meta(key, value) VALUES ('run_in_flight', ?) "
                                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (execution_id,))

    def _close_interrupted_run(self) -> None:
        """The previous daemon died during a run (kill -9, power loss): the dashboard and
        any console saw it start and never end. End it for them, as ERROR, saying why;
        it was never committed to the queue, so no run is uploaded."""
        row = self.queue.conn.execute("SELECT value FROM meta WHERE key = 'run_in_flight'").fetchone()
        if row is None:
            return
        execution_id = str(row["value"])
        message = ("The station stopped during this run (crash, kill or power loss): the run was not recorded "
                   "and will not be uploaded.")
        self.say("warning", "run_interrupted", {"execution_id": execution_id, "message": message})
        # seq 0: not the engine's events (its last seq died with it: the run log is
        # flushed per phase, not per event).
        self._publish(PhaseLog(execution_id=execution_id, level="ERROR", message=message))
        self._publish(RunFinished(execution_id=execution_id, outcome="ERROR", run={}))
        self._mark_in_flight(None)

    def _housekeeping(self, *, startup: bool) -> None:
        """Keep data/ bounded: old run logs after each run; orphaned attachment copies
        (a process killed while enqueueing) at start."""
        protect = [self.in_flight.execution_id] if self.in_flight else []
        try:
            prune_run_logs(self.paths.logs, self.config.keep_run_logs, protect)
            if startup:
                removed = remove_orphan_attachments(self.paths.attachments, self.queue.conn)
                if removed:
                    self.say("info", "orphan_attachments_removed", {"folders": removed})
        except Exception as exc:  # housekeeping must never stop a run or the daemon
            self.say("warning", "housekeeping_failed", {"message": f"{type(exc).__name__}: {exc}"})

    def _connectivity(self, connected: bool, detail: str | None) -> None:
        now = time.time()
        if connected:
            self.last_contact = datetime.now(UTC)
            self.ledger.mark(CONNECTED, now)
            self.queue.wake()
            self._drain_now.set()
        else:
            self.ledger.close(CONNECTED, now)
        self._publish(ConnectivityChanged(connected=connected, detail=detail))

    def _heartbeat_body(self) -> dict[str, Any]:
        counts = self.queue.counts()
        active = [p.active.id for p in self.deployments.linked_procedures() if p.active]
        return {"status": "running" if self.in_flight else "idle", "cli_version": __version__,
                "active_deployments": active, "queue": {"pending": counts.pending + counts.backoff,
                                                        "parked": counts.parked}}

    # --- loops ------------------------------------------------------------------------
    async def _supervised(self, name: str, loop_fn: Callable[[], Awaitable[None]]) -> None:
        """Keep a loop alive: a bug in one part must not silently stop uploads or presence.
        A loop never ends by itself: one that returns is as wrong as one that raised."""
        while True:
            try:
                await loop_fn()
                self.say("error", "loop_ended", {"loop": name, "message": "the loop returned unexpectedly",
                                                 "restart_in_s": LOOP_RESTART_S})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.say("error", "loop_crashed", {"loop": name, "message": f"{type(exc).__name__}: {exc}",
                                                   "traceback": traceback.format_exc(),
                                                   "restart_in_s": LOOP_RESTART_S})
            await asyncio.sleep(LOOP_RESTART_S)

    async def _ledger_loop(self) -> None:
        while True:
            self.ledger.mark(RUNNING)
            if self.presence.connected:
                self.last_contact = datetime.now(UTC)
                self.ledger.mark(CONNECTED)
            await asyncio.sleep(LEDGER_TICK_S)

    async def _poll_loop(self) -> None:
        while True:
            await self.sync(force=False)
            await wait_event(self._pull_now, self.config.poll_interval_s)

    async def sync(self, force: bool) -> None:
        """Read `stations/current` and bring deployments in line (one at a time)."""
        async with self._sync_lock:
            try:
                current = await asyncio.to_thread(self.client.current_station)
            except Unauthorized as exc:
                self._revoked(exc.message)
                return
            except ApiError as exc:
                self.presence.mark_http(False, exc.message)
                self.say("warning", "sync_failed", {"message": exc.message})
                return
            self.presence.mark_http(True, "API reachable")
            self.last_contact = datetime.now(UTC)
            await asyncio.to_thread(self.deployments.sync, current, force=force)

    async def _drain_loop(self) -> None:
        while True:
            try:
                wait = await asyncio.to_thread(self.drainer.drain)
            except Unauthorized as exc:
                self._revoked(exc.message)
                wait = None
            except Exception as exc:  # never let the drain loop die: runs would pile up silently
                self.say("error", "drain_failed", {"message": f"{type(exc).__name__}: {exc}"})
                wait = None
            timeout = self.config.drain_interval_s if wait is None else min(max(wait, 0.2),
                                                                            self.config.drain_interval_s)
            await wait_event(self._drain_now, timeout)

    # --- commands ---------------------------------------------------------------------
    async def _remote_command(self, data: dict[str, Any]) -> None:
        try:
            command = parse_command(data)
        except ValidationError as exc:
            self.say("warning", "command_invalid", {"command": data.get("name"), "message": exc.errors()[0]["msg"]})
            return
        self.say("info", "command_received", {"command": command.name, "id": command.id})
        try:
            await self.handle_command(command)
        except CommandRefused as exc:
            self.say("warning", "command_refused", {"command": command.name, "message": str(exc)})
            self._publish(ErrorEvent(message=f"{command.name}: {exc}"))
        except Exception as exc:  # a bug: said, and the stream that carried it stays up
            self.say("error", "command_failed", {"command": command.name, "id": command.id,
                                                 "message": f"{type(exc).__name__}: {exc}",
                                                 "traceback": traceback.format_exc()})
            self._publish(ErrorEvent(message=f"{command.name}: the station failed to carry it out "
                                             f"({type(exc).__name__}: {exc}); see the station's log."))

    async def handle_command(self, command: Command) -> dict[str, Any]:
        if isinstance(command, RunCommand):
            return await self.start_run(command)
        if isinstance(command, StopCommand | KillCommand):
            if self.in_flight is None:
                raise CommandRefused("No run is in progress.")
            (self.in_flight.handle.stop if isinstance(command, StopCommand) else self.in_flight.handle.kill)()
            return {"execution_id": self.in_flight.execution_id}
        if isinstance(command, UiResponseCommand):
            if self.in_flight is None:
                raise CommandRefused("No run is in progress.")
            refused = self.in_flight.handle.answer(command.request_id, command.values)
            if refused:
                raise CommandRefused(refused)
            return {}
        if isinstance(command, PullCommand):
            await self.sync(force=True)
            return {"procedures": [p.model_dump(mode="json") for p in self.deployments.linked_procedures()]}
        if isinstance(command, QueueRetryCommand):
            try:
                count = self.queue.retry(command.queue_id)
            except QueueError as exc:
                raise CommandRefused(str(exc)) from None
            self._drain_now.set()
            return {"retried": count}
        if isinstance(command, QueueDropCommand):
            try:
                return {"removed": self.queue.remove(command.queue_id)}
            except QueueError as exc:
                raise CommandRefused(str(exc)) from None
        if isinstance(command, ExitCommand):
            self.request_stop("Exit command")
            return {}
        raise CommandRefused(f"Unknown command {command.name}.")

    async def start_run(self, command: RunCommand) -> dict[str, Any]:
        if self.stopping:
            raise CommandRefused("The station is stopping; it takes no new runs.")
        if self.in_flight is not None or self._starting:
            running = self.in_flight.execution_id if self.in_flight else "starting"
            raise CommandRefused(f"A run is already in progress ({running}).")
        try:
            # Held from now (never switched or collected under the run), atomically with
            # the lookup: a sync in its worker thread cannot remove it in between.
            version = self.deployments.take(command.procedure_id)
        except ProcedureUnavailable as exc:
            raise CommandRefused(str(exc)) from None
        self._starting = True  # a second Run arriving while this one loads is refused
        try:
            handle = await self._start(command, version)
        except BaseException:
            self.deployments.run_ended(version)
            raise
        finally:
            self._starting = False
        return self._started(handle, version)

    async def _start(self, command: RunCommand, version: ActiveVersion) -> Any:
        try:
            loaded = await asyncio.to_thread(load_procedure, version.directory)
        except ProcedureLoadError as exc:
            raise CommandRefused(f"Deployment {version.sha[:12]} of {version.procedure_name!r} cannot run: "
                                 f"{exc}") from None
        loaded = dataclasses.replace(loaded, interpreter=Path(version.python))
        unit = {k: v for k, v in (("serial_number", command.serial_number), ("part_number", command.part_number),
                                  ("revision_number", command.revision_number),
                                  ("batch_number", command.batch_number)) if v}
        options = RunOptions(ui_values=command.ui_values, unit=unit, procedure_id=version.procedure_id,
                             deployment_id=version.deployment_id,
                             headless=self.bus.subscribers == 0 and not self.presence.stream_open,
                             station_plugs=self._station_plugs())
        return await start_run(loaded, options, self._publish)

    def _started(self, handle: Any, version: ActiveVersion) -> dict[str, Any]:
        flight = InFlight(handle=handle, version=version, execution_id=handle.execution_id)
        self.in_flight = flight
        flight.task = asyncio.create_task(self._finish(flight))  # first: whatever fails next, the run is ended
        flight.task.add_done_callback(self._finish_failed)
        try:
            self._mark_in_flight(flight.execution_id)
        except Exception as exc:  # only the crash marker: the run goes on
            self.say("error", "run_marker_failed", {"execution_id": flight.execution_id,
                                                    "message": f"{type(exc).__name__}: {exc}",
                                                    "traceback": traceback.format_exc()})
        self.say("info", "run_accepted", {"execution_id": flight.execution_id, "procedure": version.procedure_name,
                                          "deployment_id": version.deployment_id, "sha": version.sha})
        return {"execution_id": flight.execution_id, "deployment_id": version.deployment_id, "sha": version.sha}

    async def _finish(self, flight: InFlight) -> None:
        try:
            result = await flight.handle.wait()
            self._enqueue(flight, result)
        except Exception as exc:
            self.say("error", "run_failed", {"execution_id": flight.execution_id,
                                             "message": f"{type(exc).__name__}: {exc}",
                                             "traceback": traceback.format_exc()})
        finally:
            self.in_flight = None
            # Each step on its own: one failing must not skip the others (a daemon
            # asked to stop would wait forever, a version would stay held).
            steps: tuple[Callable[[], None], ...] = (
                lambda: self._close_run_log(flight.execution_id), lambda: self._mark_in_flight(None),
                lambda: self.deployments.run_ended(flight.version))
            for step in steps:
                try:
                    step()
                except Exception as exc:
                    self.say("error", "run_cleanup_failed", {"execution_id": flight.execution_id,
                                                             "message": f"{type(exc).__name__}: {exc}",
                                                             "traceback": traceback.format_exc()})
            self._housekeeping(startup=False)
            self._requeue_kept()
            self._drain_now.set()
            if self.stopping:
                self._stop.set()

    def _close_run_log(self, execution_id: str) -> None:
        log = self._run_logs.pop(execution_id, None)
        if log is not None:
            log.close()

    def _finish_failed(self, task: asyncio.Task[None]) -> None:
        """Nothing `_finish` raises goes unseen."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.say("error", "run_finish_failed", {"message": f"{type(exc).__name__}: {exc}",
                                                    "traceback": "".join(traceback.format_exception(exc))})

    def _enqueue(self, flight: InFlight, result: Any) -> None:
        if not result.runs:
            self.say("warning", "run_not_uploaded", {"execution_id": flight.execution_id,
                                                     "message": result.error or "nothing ran"})
            return
        for index, run in enumerate(result.runs):
            payload = run.model_dump(mode="json", exclude_none=True)
            payload["procedure_id"] = flight.version.procedure_id
            payload["deployment_id"] = flight.version.deployment_id
            payload.setdefault("procedure_version", flight.version.sha[:12])
            files = result.attachments[index] if index < len(result.attachments) else []
            attachments = [AttachmentFile(a.name, Path(a.path)) for a in files]
            try:
                queued = self.queue.enqueue(payload, attachments, execution_id=flight.execution_id)
            except Exception as exc:  # the queue's database failed: the run must survive it
                self._keep_unqueued(flight.execution_id, payload, attachments, exc)
                continue
            self._publish(queued)

    def _keep_unqueued(self, execution_id: str, payload: dict[str, Any], attachments: list[AttachmentFile],
                       exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        try:
            kept = unqueued.keep(self.paths, payload, attachments, execution_id)
        except Exception as keep_exc:  # not even a file: the log line itself carries the run
            self.say("error", "run_not_kept", {
                "execution_id": execution_id, "payload": payload,
                "message": f"The upload queue failed ({reason}) and the run could not be written to "
                           f"{unqueued.folder(self.paths)} ({type(keep_exc).__name__}: {keep_exc}). The run is "
                           "in this log line; free disk space and check the data folder (`tofu-tui doctor`)."})
            return
        self.say("error", "run_kept_unqueued", {
            "execution_id": execution_id, "file": str(kept),
            "message": f"The upload queue failed ({reason}); the run is kept in {kept} and will be queued "
                       "after the next run or at the next start. Check the data folder (`tofu-tui doctor`)."})

    def _requeue_kept(self) -> None:
        """Runs kept aside when the queue failed go into it now, if it works again."""
        if not unqueued.folder(self.paths).is_dir():
            return
        try:
            queued, problems = unqueued.requeue(self.paths, self.queue)
        except Exception as exc:  # the queue is still broken: the files stay for later
            self.say("error", "kept_runs_failed", {"message": f"{type(exc).__name__}: {exc}"})
            return
        for event in queued:
            self._publish(event)
        if queued:
            self.say("info", "kept_runs_queued", {"count": len(queued)})
        for problem in problems:
            self.say("warning", "kept_run_not_queued", {"message": problem})

    # --- status (control socket) ------------------------------------------------------
    def status(self) -> StationStatus:
        procedures = self.deployments.linked_procedures()
        for procedure in procedures:
            procedure.runs_today = self.queue.runs_today(procedure.id)
        return StationStatus(
            station_id=self.config.station_id, station_name=self.config.station_name,
            server_url=self.config.server_url, enrolled=True, connected=self.presence.connected,
            last_contact_at=self.last_contact, daemon_started_at=self.started_at, procedures=procedures,
            queue=self.queue.counts(), queue_entries=self.queue.entries(limit=100), uptime=self.ledger.uptime(),
            run_in_flight=self.in_flight.execution_id if self.in_flight else None)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        return self.bus.subscribe(replay=self.run_replay.events())

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self.bus.unsubscribe(queue)

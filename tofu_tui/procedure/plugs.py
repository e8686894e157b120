"""Plug processes and their scopes (procedure-format §5).

Each plug instance runs in its own process (`plughost.py`, with the procedure's
interpreter). `PlugManager` starts them sequentially per scope, hands out a
`PlugAddress` per key for the phases that may use them, and stops them when their
scope ends. `StationPlugs` keeps station-scoped instances across runs for a long-lived
station host; without one, station plugs behave as execution plugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tofu_tui.procedure import plughost
from tofu_tui.procedure.jsontext import loads as json_loads
from tofu_tui.procedure.load import LoadedProcedure
from tofu_tui.procedure.pool import PlugAddress
from tofu_tui.procedure.references import parse_reference
from tofu_tui.procedure.schema import PlugSpec

PLUGHOST = Path(plughost.__file__).resolve()
HANDSHAKE_SLACK_S = 15.0  # interpreter start-up on top of the 30 s constructor budget
STOP_BUDGET_S = plughost.DELETE_BUDGET_S + 1.0 + 3.0  # delete, shutdown, graceful exit
PROBE_TIMEOUT_S = 5.0
_MAX_UNIX_PATH = 100


class PlugStartError(Exception):
    """A plug could not start: its constructor raised or timed out, or its file is bad."""

    def __init__(self, plug: PlugSpec, reason: str, details: str = "", slot: str | None = None) -> None:
        self.key = plug.key
        self.name = plug.name
        self.reason = reason
        self.details = details
        self.slot = slot
        where = f" for slot {slot}" if slot else ""
        super().__init__(f"Plug {plug.name!r} ({plug.key}){where} failed to start: {reason}")


@dataclass
class PlugProcess:
    """One running plug instance."""

    spec: PlugSpec
    slot: str | None
    process: subprocess.Popen[bytes]
    address: str
    log: Path
    fingerprint: str = ""
    _stopping: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_address(self) -> PlugAddress:
        return PlugAddress(
            key=self.spec.key,
            address=self.address,
            extra={"scope": self.spec.scope, "slot": self.slot, "pid": self.process.pid},
        )

    def alive(self) -> bool:
        """Liveness probe (5 s): the process answers a ping."""
        if self.process.poll() is not None:
            return False
        try:
            reply = plughost.request(self.address, {"op": "ping"}, PROBE_TIMEOUT_S)
        except OSError:
            return False
        return bool(reply and reply.get("ok"))

    def stop(self) -> None:
        """`del` + gc in the plug process, then make sure the process is gone. Safe to
        call from several threads: the others wait until the first has finished."""
        if not self._stopping.acquire(blocking=False):
            self._stopped.wait()
            return
        try:
            self._stop()
        finally:
            self._stopped.set()

    def _stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                plughost.request(self.address, {"op": "shutdown"}, 1.0)
            with contextlib.suppress(OSError):
                if self.process.stdin is not None:
                    self.process.stdin.close()
            try:
                self.process.wait(STOP_BUDGET_S)
            except subprocess.TimeoutExpired:
                _kill(self.process)
        _close_pipes(self.process)
        family, target = plughost._parse_address(self.address)
        if family == "unix":
            with contextlib.suppress(OSError):
                os.unlink(target)


def _package_of(file: Path, directory: Path) -> str:
    """The dotted package a plug file sits in under the procedure directory ('' at its top)."""
    try:
        parts = file.resolve().relative_to(directory.resolve()).parent.parts
    except ValueError:
        return ""
    return ".".join(parts) if all(part.isidentifier() for part in parts) else ""


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if os.name != "nt":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _fingerprint(loaded: LoadedProcedure, plug: PlugSpec) -> str:
    """What a station plug instance was built from; any change means a new instance."""
    file = parse_reference(plug.python, loaded.directory, "plug").file
    try:
        modified = file.stat().st_mtime_ns
    except OSError:
        modified = 0
    return json.dumps(
        [str(loaded.directory), str(loaded.interpreter), plug.python, str(file), modified, plug.config],
        sort_keys=True,
        default=str,
    )


def start_plug(
    loaded: LoadedProcedure,
    plug: PlugSpec,
    *,
    slot: str | None,
    log_dir: Path,
    socket_dir: Path | None,
    construct_budget_s: float = plughost.CONSTRUCT_BUDGET_S,
) -> PlugProcess:
    """Start one plug instance and wait for its constructor; raises PlugStartError."""
    reference = parse_reference(plug.python, loaded.directory, "plug")
    suffix = f"-{slot}" if slot else ""
    log = log_dir / f"{plug.key}{suffix}.log"
    socket_path: str | None = None
    if socket_dir is not None and os.name != "nt":
        candidate = str(socket_dir / f"{plug.key}{suffix}.sock")
        if len(candidate) <= _MAX_UNIX_PATH:
            socket_path = candidate
    spec = {
        "key": plug.key,
        "file": str(reference.file),
        "package": _package_of(reference.file, loaded.directory),
        "class": reference.callable,
        "directory": str(loaded.directory),
        "config": plug.config,
        "log": str(log),
        "socket": socket_path,
        "construct_budget_s": construct_budget_s,
    }
    with open(log, "ab") as log_file:
        try:
            process = subprocess.Popen(
                [str(loaded.interpreter), "-u", str(PLUGHOST)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env=_child_env(),
                start_new_session=os.name != "nt",
            )
        except OSError as exc:
            raise PlugStartError(plug, f"cannot start {loaded.interpreter}: {exc}", slot=slot) from None
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(json.dumps(spec, default=str).encode() + b"\n")
        process.stdin.flush()
    except OSError:
        pass  # the process died at once; the handshake below says why
    line = _read_line(process, construct_budget_s + HANDSHAKE_SLACK_S)
    reply: dict[str, Any] | None = None
    if line:
        with contextlib.suppress(ValueError):
            reply = json_loads(line)
    if reply is None or not reply.get("ok"):
        _kill(process)
        _close_pipes(process)
        if reply is None:
            reason = "the plug process ended before it was ready" if line is not None else (
                "the plug process did not report within "
                f"{construct_budget_s + HANDSHAKE_SLACK_S:.0f} s"
            )
            raise PlugStartError(plug, reason, _tail(log), slot=slot)
        details = str(reply.get("error", ""))
        last = details.strip().splitlines()[-1] if details.strip() else "unknown error"
        raise PlugStartError(plug, last, details, slot=slot)
    return PlugProcess(plug, slot, process, str(reply["address"]), log)


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str | None:
    """The first stdout line, "" at EOF, None on timeout (a thread, so Windows works too)."""
    result: list[bytes] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        return None
    return result[0].decode("utf-8", errors="replace").strip() if result else ""


class StationPlugs:
    """Station-scoped instances kept across runs under a long-lived station host."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="tofu-tui-station-plugs-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._socket_dir = _socket_dir()
        self._running: dict[str, PlugProcess] = {}  # plug key -> instance

    def acquire(self, loaded: LoadedProcedure, plug: PlugSpec) -> PlugProcess:
        """The running instance if it still fits and answers, else a fresh one."""
        fingerprint = _fingerprint(loaded, plug)
        current = self._running.get(plug.key)
        if current is not None and (current.fingerprint != fingerprint or not current.alive()):
            current.stop()
            current = None
        if current is None:
            current = start_plug(loaded, plug, slot=None, log_dir=self._log_dir, socket_dir=self._socket_dir)
            current.fingerprint = fingerprint
            self._running[plug.key] = current
        return current

    def retain_only(self, keys: set[str]) -> None:
        """Stop instances whose plug is no longer declared."""
        for key in list(self._running):
            if key not in keys:
                self._running.pop(key).stop()

    def close(self) -> None:
        for key in list(self._running):
            self._running.pop(key).stop()


def _socket_dir() -> Path | None:
    if os.name == "nt":
        return None
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix="tfp-", dir=base))


class PlugManager:
    """The plugs of one run: start per scope, addresses for phases, stop at scope end."""

    def __init__(
        self,
        loaded: LoadedProcedure,
        *,
        log_dir: Path | None = None,
        station: StationPlugs | None = None,
        construct_budget_s: float = plughost.CONSTRUCT_BUDGET_S,
    ) -> None:
        self.loaded = loaded
        self.construct_budget_s = construct_budget_s
        self.station = station
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="tofu-tui-plugs-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._socket_dir = _socket_dir()
        self._execution: dict[str, PlugProcess] = {}
        self._station: dict[str, PlugProcess] = {}
        self._slots: dict[str, dict[str, PlugProcess]] = {}
        self._started: list[PlugProcess] = []  # every instance this run started itself
        self._lock = asyncio.Lock()

    @property
    def plugs(self) -> list[PlugSpec]:
        return self.loaded.spec.plugs

    @property
    def has_slot_plugs(self) -> bool:
        return any(plug.scope == "slot" for plug in self.plugs)

    def _start(self, plug: PlugSpec, slot: str | None) -> PlugProcess:
        process = self._start_plug(plug, slot)
        self._started.append(process)
        return process

    def _start_plug(self, plug: PlugSpec, slot: str | None) -> PlugProcess:
        return start_plug(
            self.loaded,
            plug,
            slot=slot,
            log_dir=self.log_dir,
            socket_dir=self._socket_dir,
            construct_budget_s=self.construct_budget_s,
        )

    async def start_execution(self) -> None:
        """Execution and station plugs, one after the other in YAML order.

        Raises PlugStartError for the first that fails; those already started keep
        running until `close()`."""
        async with self._lock:
            if self.station is not None:
                await asyncio.to_thread(self.station.retain_only, {p.key for p in self.plugs if p.scope == "station"})
            for plug in self.plugs:
                if plug.scope == "slot" or plug.key in self._execution or plug.key in self._station:
                    continue
                if plug.scope == "station" and self.station is not None:
                    self._station[plug.key] = await asyncio.to_thread(self.station.acquire, self.loaded, plug)
                else:  # a one-shot run degrades station plugs to execution scope
                    self._execution[plug.key] = await asyncio.to_thread(self._start, plug, None)

    async def start_slot(self, slot: str) -> None:
        """This slot's own instances of the slot-scoped plugs; raises PlugStartError."""
        async with self._lock:
            running = self._slots.setdefault(slot, {})
            for plug in self.plugs:
                if plug.scope == "slot" and plug.key not in running:
                    running[plug.key] = await asyncio.to_thread(self._start, plug, slot)

    def addresses(self, slot: str | None) -> dict[str, PlugAddress]:
        """Plugs a job may use: execution and station plugs, plus the slot's own when
        `slot` is given (None = an execution-wide phase, which gets no slot plugs, Q5)."""
        found = {key: process.as_address() for key, process in {**self._execution, **self._station}.items()}
        if slot is not None:
            found.update({key: process.as_address() for key, process in self._slots.get(slot, {}).items()})
        return found

    async def stop_slot(self, slot: str) -> None:
        running = self._slots.pop(slot, {})
        for process in reversed(list(running.values())):
            await asyncio.to_thread(process.stop)

    async def stop_execution(self) -> None:
        """Execution plugs (and station plugs degraded to execution); station-host plugs stay."""
        running, self._execution = self._execution, {}
        for process in reversed(list(running.values())):
            await asyncio.to_thread(process.stop)
        self._station = {}

    async def close(self) -> None:
        """End of run: every slot and execution plug is stopped, including those whose
        stop another task began, so no plug outlives the run's end."""
        for slot in list(self._slots):
            await self.stop_slot(slot)
        await self.stop_execution()
        for process in self._started:
            await asyncio.to_thread(process.stop)
        if self._socket_dir is not None:
            # A killed plug host leaves its socket file: the folder is this run's alone.
            shutil.rmtree(self._socket_dir, ignore_errors=True)

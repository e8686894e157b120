"""Worker processes and phase attempts: the pool that runs one attempt at a time per worker.

The worker program itself is `worker.py` (standard library only, run with the
procedure's interpreter); this module starts, feeds, watches and replaces workers, and
runs `executable` (shell) phases directly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# Worker start-up lives in workerstart.py (cheap to import); its names stay public here.
from tofu_tui.procedure.jsontext import loads as json_loads
from tofu_tui.procedure.workerstart import WORKER_SCRIPT as WORKER_SCRIPT
from tofu_tui.procedure.workerstart import PrestartedWorker, child_environment, launch_worker
from tofu_tui.procedure.workerstart import prestart_worker as prestart_worker

if TYPE_CHECKING:
    from tofu_tui.procedure.evaluate import MeasurementRecord
    from tofu_tui.procedure.load import LoadedProcedure
    from tofu_tui.procedure.schema import PhaseSpec

Signal = Literal["fail", "skip", "retry", "stop"]


@dataclass
class LogLine:
    level: str  # DEBUG / INFO / WARNING / ERROR / CRITICAL
    timestamp: datetime
    message: str
    source_file: str  # relative to the procedure directory when inside it; "" if unknown
    line_number: int  # 0 if unknown


@dataclass
class AttachmentRecord:
    name: str
    path: Path  # a file the engine owns (copied at attach time)
    size: int


@dataclass
class PhaseResultView:
    """What a later phase sees of an earlier phase's latest attempt (§4 rule 2)."""

    outcome: str  # lowercase: "pass", "fail", ...
    duration_ms: float
    measurements: dict[str, MeasurementRecord] = field(default_factory=dict)


@dataclass
class PlugAddress:
    """Where a plug process listens; plugs.py (helper A) fills it in."""

    key: str
    address: str  # "host:port" or a socket path, whatever plughost.PlugProxy accepts
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttemptRequest:
    phase: PhaseSpec
    slot: str | None
    retry_count: int
    retry_limit: int
    deadline: float | None  # time.monotonic() deadline from timeout_ms, None = none
    unit: dict[str, Any]
    run_metadata: dict[str, Any]
    results: Mapping[str, PhaseResultView]  # read-only view
    plugs: dict[str, Any]  # plug key -> PlugAddress (or whatever plugs.py hands out)
    slot_id: str
    job_id: str
    # The `python:` reference the scheduler expects to run after this attempt: the worker
    # compiles its file ahead, while the engine finishes this one (a hint, may be wrong).
    next_python: str | None = None


@dataclass
class AttemptResult:
    started_at: datetime
    ended_at: datetime
    error: str | None
    timed_out: bool
    signal: Signal | None
    signal_message: str | None
    exit_code: int | None
    measurements: dict[str, MeasurementRecord]
    logs: list[LogLine]
    attachments: list[AttachmentRecord]
    unit: dict[str, Any]
    run_metadata: dict[str, Any]


# --- live events: emitted while an attempt runs; each names its job ------------------


@dataclass
class LiveLog:
    job_id: str
    line: LogLine


@dataclass
class LiveMeasurement:
    job_id: str
    key: str
    record: MeasurementRecord


@dataclass
class LiveUiUpdate:
    job_id: str
    key: str
    value: Any


@dataclass
class LiveAttachment:
    job_id: str
    attachment: AttachmentRecord


@dataclass
class LiveEngineWarning:
    """Engine-internal notice (e.g. the 75 % timeout warning): not a phase log, not uploaded."""

    job_id: str
    message: str


LiveEvent = LiveLog | LiveMeasurement | LiveUiUpdate | LiveAttachment | LiveEngineWarning


HANDSHAKE_S = 90.0  # §8 worker port handshake
IMPORT_STALL_S = 300.0  # §8 module import: no traffic for this long
ACK_S = 30.0  # §8 job acknowledgement: a worker that says nothing this long after a job is stuck
WARN_FRACTION = 0.75
STREAM_LIMIT = 64 * 1024 * 1024  # one protocol line (a huge measurement list) at most
STDERR_TAIL = 8192  # bytes of a worker's own stderr kept for crash reports
# Another worker starts only once the busy ones have finished nothing for this long: a
# worker that frees up sooner is cheaper than a new interpreter (~50-150 ms of CPU).
GROW_AFTER_S = 0.03
SHELL_LINE_CAP = 10_000
SHELL_HEAD_LINES = 10_000
SHELL_TAIL_LINES = 2_000

_log = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """No worker process could be started (bad interpreter, broken environment)."""


class _SpawnFailed:
    def __init__(self, message: str) -> None:
        self.message = message


class _Process:
    """A worker process started with subprocess.Popen (synchronously, so it can be
    started before an event loop exists), awaited through a pidfd where available."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.stderr: asyncio.StreamReader | None = None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()

    async def wait(self) -> int:
        code = self.popen.poll()
        if code is not None:
            return code
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            while (code := self.popen.poll()) is None:
                await asyncio.sleep(0.01)
            return code
        try:
            ready: asyncio.Future[None] = loop.create_future()

            def exited() -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(fd, exited)
            try:
                if self.popen.poll() is None:
                    await ready
            finally:
                loop.remove_reader(fd)
        finally:
            os.close(fd)
        return self.popen.wait()


@dataclass(eq=False)
class _Worker:
    worker_id: int
    process: _Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stderr_tail: bytearray = field(default_factory=bytearray)
    stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill_group(self) -> None:
        """SIGKILL the worker's whole process group: the phase's children go too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def stderr_text(self) -> str:
        return self.stderr_tail.decode("utf-8", "replace").strip()


@dataclass
class _Attempt:
    request: AttemptRequest
    emit: Callable[[LiveEvent], None]
    stage: str = "import"
    last_traffic: float = 0.0
    acked: bool = False  # the worker has answered the job (any message)
    measurements: dict[str, MeasurementRecord] = field(default_factory=dict)
    logs: list[LogLine] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)

    def send(self, event: LiveEvent) -> None:
        try:
            self.emit(event)
        except Exception:  # a broken consumer must not break the attempt
            _log.exception("live event consumer failed")

    def add_log(self, line: LogLine) -> None:
        self.logs.append(line)
        self.send(LiveLog(self.request.job_id, line))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _timeout_seconds(phase: PhaseSpec) -> int:
    return max(1, round((phase.timeout_ms or 0) / 1000))


class WorkerPool:
    """Up to `size` long-lived worker processes; one attempt at a time on each.

    Workers start lazily (the first one as soon as `start()` is called, so its
    interpreter start-up overlaps whatever the caller does next) and are replaced
    whenever one is killed (timeout, cancellation) or dies (crash, os._exit).
    """

    def __init__(
        self,
        loaded: LoadedProcedure,
        size: int,
        emit: Callable[[LiveEvent], None],
        *,
        attachments_dir: Path | None = None,
        import_stall_s: float = IMPORT_STALL_S,
        ack_s: float = ACK_S,
        handshake_s: float = HANDSHAKE_S,
        prestart: int = 1,
        prestarted: PrestartedWorker | None = None,
        grow_after_s: float = GROW_AFTER_S,
    ) -> None:
        self.loaded = loaded
        self.size = max(1, size)
        self.emit = emit
        self._own_attachments_dir = attachments_dir is None
        self.attachments_dir = attachments_dir or Path(tempfile.mkdtemp(prefix="tofu-attachments-"))
        self.import_stall_s = import_stall_s
        self.ack_s = ack_s
        self.handshake_s = handshake_s
        self.prestart = prestart
        self.grow_after_s = grow_after_s
        self._last_release = float("-inf")  # loop time a worker last finished an attempt
        self.directory = Path(loaded.directory).resolve()
        self._idle: asyncio.Queue[_Worker | _SpawnFailed] = asyncio.Queue()
        self._count = 0  # live + starting workers
        self._starting = 0  # spawns in flight
        self._waiting = 0  # attempts waiting for an idle worker
        self._workers: set[_Worker] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._free_ids: list[int] = []
        self._next_id = 0
        self._closed = False
        self._refs: dict[str, tuple[str | None, str | None, str, str, str | None]] = {}
        self._prestarted: PrestartedWorker | None = None
        if prestarted is not None:
            same = prestarted.directory == self.directory and Path(prestarted.interpreter) == Path(
                loaded.interpreter
            )
            if same and prestarted.popen.poll() is None:
                self._prestarted = prestarted
            else:
                prestarted.discard()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, wait: bool = True) -> None:
        """Start the first worker(s). With `wait`, return once the first one is ready and
        raise WorkerStartError if it cannot start (§10: then nothing runs); without,
        return at once (its start-up overlaps the caller's work)."""
        want = min(self.prestart, self.size) - self._count
        if want <= 0:
            return
        if wait:
            worker_id = self._take_id()
            self._count += 1
            try:
                w = await self._spawn(worker_id)
            except BaseException as exc:
                self._count -= 1
                self._free_ids.append(worker_id)
                if isinstance(exc, Exception):
                    raise WorkerStartError(str(exc)) from None
                raise
            self._idle.put_nowait(w)
            want -= 1
        for _ in range(want):
            self._spawn_in_background()

    async def close(self) -> None:
        self._closed = True
        if self._prestarted is not None:
            self._prestarted.discard()
            self._prestarted = None
        for task in list(self._spawning):
            task.cancel()
        for task in list(self._spawning):
            with contextlib.suppress(BaseException):
                await task
        workers = list(self._workers)
        for w in workers:
            with contextlib.suppress(Exception):
                w.writer.close()  # EOF: an idle worker exits on its own
        for w in workers:
            try:
                await asyncio.wait_for(w.process.wait(), 2.0)
            except TimeoutError:
                pass
            w.kill_group()  # and whatever its phases left running
            await self._reap(w)
        self._workers.clear()
        if self._own_attachments_dir:
            # Attachments stay for the caller; a folder that got none is not left behind.
            with contextlib.suppress(OSError):
                self.attachments_dir.rmdir()

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _take_id(self) -> int:
        if self._free_ids:
            return self._free_ids.pop()
        self._next_id += 1
        return self._next_id - 1

    def _spawn_in_background(self) -> None:
        self._count += 1
        self._starting += 1
        task = asyncio.ensure_future(self._spawn_into_queue())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _spawn_into_queue(self) -> None:
        worker_id = self._take_id()
        try:
            w = await self._spawn(worker_id)
        except asyncio.CancelledError:
            self._count -= 1
            self._starting -= 1
            raise
        except Exception as exc:
            self._count -= 1
            self._starting -= 1
            self._free_ids.append(worker_id)
            self._idle.put_nowait(_SpawnFailed(str(exc)))
            return
        self._starting -= 1
        if self._closed:
            w.kill_group()
            await self._reap(w)
            return
        self._idle.put_nowait(w)

    async def _spawn(self, worker_id: int) -> _Worker:
        adopted = self._prestarted
        self._prestarted = None
        if adopted is not None and worker_id == 0:
            popen, parent = adopted.popen, adopted.channel
        else:
            popen, parent = launch_worker(self.directory, Path(self.loaded.interpreter), worker_id)
        return await self._attach(worker_id, popen, parent)

    async def _attach(
        self, worker_id: int, popen: subprocess.Popen[bytes], parent: socket.socket
    ) -> _Worker:
        loop = asyncio.get_running_loop()
        process = _Process(popen)
        if popen.stderr is not None:
            stderr = asyncio.StreamReader(limit=STREAM_LIMIT)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stderr), popen.stderr)
            process.stderr = stderr
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=STREAM_LIMIT)
        w = _Worker(worker_id, process, reader, writer)
        w.stderr_task = asyncio.ensure_future(self._drain_stderr(w))
        self._workers.add(w)
        silent = ""
        try:
            line = await asyncio.wait_for(reader.readline(), self.handshake_s)
        except TimeoutError:
            line, silent = b"", f"it did not answer within {self.handshake_s:g} s"
        if not line.startswith(b'{"t":"ready"'):
            w.kill_group()
            await self._reap(w)
            detail = w.stderr_text() or silent
            raise RuntimeError(
                f"The worker process (interpreter {self.loaded.interpreter}) did not start"
                + (f": {detail}" if detail else ".")
            )
        return w

    async def _drain_stderr(self, w: _Worker) -> None:
        stream = w.process.stderr
        if stream is None:
            return
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            w.stderr_tail += chunk
            if len(w.stderr_tail) > STDERR_TAIL:
                del w.stderr_tail[: len(w.stderr_tail) - STDERR_TAIL]

    async def _reap(self, w: _Worker) -> None:
        with contextlib.suppress(Exception):
            w.writer.close()
        try:
            await asyncio.wait_for(w.process.wait(), 5.0)
        except TimeoutError:
            w.kill_group()
        if w.stderr_task is not None:
            try:
                await asyncio.wait_for(w.stderr_task, 1.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        self._workers.discard(w)

    async def _discard(self, w: _Worker) -> None:
        """Kill a worker that can no longer be trusted and start its replacement."""
        w.kill_group()
        self._count -= 1
        self._free_ids.append(w.worker_id)
        if not self._closed:
            self._spawn_in_background()
        # Bookkeeping is done; reaping finishes even if our caller is cancelled meanwhile.
        await asyncio.shield(self._reap(w))

    async def _acquire(self) -> _Worker | _SpawnFailed:
        stop_growing: Callable[[], None] | None = None
        if self._idle.empty() and self._count < self.size:
            stop_growing = self._grow_later()
        self._waiting += 1
        try:
            while True:
                got = await self._idle.get()
                if isinstance(got, _Worker) and got.process.returncode is not None:
                    await self._discard(got)  # died while idle (OOM killer, kill -9 ...)
                    continue
                return got
        finally:
            self._waiting -= 1
            if stop_growing is not None:
                stop_growing()

    def _grow_later(self) -> Callable[[], None]:
        """Start another worker for a waiting attempt, unless a busy one frees up first:
        while workers keep finishing attempts (short phases), they keep up on their own."""
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def check() -> None:
            if self._closed or not self._idle.empty() or self._count >= self.size:
                return
            # Only if the ones already starting are all spoken for: on a small machine,
            # extra interpreters starting at once slow the first.
            if self._waiting <= self._starting:
                return
            quiet = loop.time() - self._last_release
            if quiet < self.grow_after_s:
                holder[0] = loop.call_later(self.grow_after_s - quiet, check)
                return
            self._spawn_in_background()

        holder.append(loop.call_later(self.grow_after_s, check))
        return lambda: holder[0].cancel()

    # -- attempts -------------------------------------------------------------------

    async def run_attempt(
        self, request: AttemptRequest, emit: Callable[[LiveEvent], None] | None = None
    ) -> AttemptResult:
        """Run one attempt; live events go to `emit` (default: the pool's)."""
        attempt = _Attempt(request, emit or self.emit)
        started = datetime.now(UTC)
        if request.phase.executable is not None:
            return await self._run_shell(attempt, started)
        if not request.phase.python:
            # UI-only (or empty) phase: no code to run; the caller handles its prompt.
            return self._finish(attempt, started, {})
        loop = asyncio.get_running_loop()
        try:
            got = await self._wait_until(self._acquire(), request.deadline)
        except _Deadline:
            return self._timed_out(attempt, started)
        if isinstance(got, _SpawnFailed):
            return self._error(attempt, started, got.message)
        w = got
        attempt.last_traffic = loop.time()
        outcome, done = await self._supervise(w, attempt)
        if outcome == "timeout":
            await self._discard(w)
            return self._timed_out(attempt, started)
        if outcome == "noack":
            await self._discard(w)
            return self._error(
                attempt,
                started,
                f"The worker did not acknowledge the job within {self.ack_s:g} seconds (frozen or "
                "starved of CPU?); it was replaced.",
            )
        if outcome == "stall":
            await self._discard(w)
            return self._error(
                attempt,
                started,
                f"Importing the phase module produced no activity for {self.import_stall_s:g} "
                "seconds; the worker was replaced.",
            )
        if isinstance(done, dict):
            self._last_release = loop.time()
            self._idle.put_nowait(w)
            return self._finish(attempt, started, done)
        # The channel closed (or broke) before the attempt finished: the worker died.
        if done is None:
            try:
                await asyncio.wait_for(w.process.wait(), 5.0)
            except TimeoutError:
                pass
            await self._discard(w)
            message = self._crash_message(w, request)
        else:
            await self._discard(w)
            message = done
        return self._error(attempt, started, message)

    async def _supervise(self, w: _Worker, attempt: _Attempt) -> tuple[str, dict[str, Any] | str | None]:
        """Run the attempt's message pump in this task under the watchdogs.

        Returns ('done', the worker's `done` message, an error text, or None if the
        channel closed) or ('timeout' | 'noack' | 'stall', None). The pump runs inline
        and one timer stands for every watchdog: a trivial phase then costs no extra
        task and no extra event-loop turn.
        """
        task = asyncio.current_task()
        assert task is not None
        fired: list[str] = []

        def expire(reason: str) -> None:
            fired.append(reason)
            task.cancel()

        disarm = self._arm_watchdog(attempt, expire)
        try:
            return "done", await self._pump(w, attempt)
        except asyncio.CancelledError:
            if not fired or task.uncancel() > 0:
                await self._discard(w)  # cancelled from outside: the worker is mid-phase
                raise
            return fired[0], None
        except Exception as exc:
            if isinstance(exc, ValueError | asyncio.LimitOverrunError) and "limit" in str(exc):
                return "done", (
                    f"The phase sent a message larger than {STREAM_LIMIT // (1024 * 1024)} MB "
                    "(a measurement or ui value too large?); the worker was replaced."
                )
            return "done", f"The worker's messages could not be read ({exc}); the worker was replaced."
        finally:
            disarm()

    def _arm_watchdog(self, attempt: _Attempt, expire: Callable[[str], None]) -> Callable[[], None]:
        """One timer for the attempt's deadline, its 75 % warning, the job acknowledgement
        and the import stall; calls `expire(reason)` once. Returns the disarm function."""
        loop = asyncio.get_running_loop()
        ack_at = loop.time() + self.ack_s
        deadline = attempt.request.deadline
        warn_at: float | None = None
        if deadline is not None:
            warn_at = loop.time() + WARN_FRACTION * (deadline - time.monotonic())
            deadline = loop.time() + (deadline - time.monotonic())
        handle: list[asyncio.TimerHandle] = []

        def check() -> None:
            nonlocal warn_at
            now = loop.time()
            waits = []
            if deadline is not None:
                if now >= deadline:
                    return expire("timeout")
                waits.append(deadline)
                if warn_at is not None:
                    if now >= warn_at:
                        self._warn(attempt)
                        warn_at = None
                    else:
                        waits.append(warn_at)
            if not attempt.acked:
                if now >= ack_at:
                    return expire("noack")
                waits.append(ack_at)
            if attempt.stage == "import":
                stall_at = attempt.last_traffic + self.import_stall_s
                if now >= stall_at:
                    return expire("stall")
                waits.append(stall_at)
            if waits:
                handle[:] = [loop.call_at(min(waits), check)]

        check()
        return lambda: handle[0].cancel() if handle else None

    def _warn(self, attempt: _Attempt) -> None:
        phase = attempt.request.phase
        attempt.send(
            LiveEngineWarning(
                attempt.request.job_id,
                f"Phase '{phase.key}' has used 75% of its {_timeout_seconds(phase)} s timeout.",
            )
        )

    async def _pump(self, w: _Worker, attempt: _Attempt) -> dict[str, Any] | None:
        """Send the job, then turn the worker's messages into results and live events."""
        request = attempt.request
        w.writer.write(self._job_message(request))
        loop = asyncio.get_running_loop()
        job_id = request.job_id
        while True:
            line = await w.reader.readline()
            if not line:
                return None
            attempt.last_traffic = loop.time()
            attempt.acked = True
            msg = json_loads(line)
            kind = msg["t"]
            if kind == "log":
                for level, ts, message, file, lineno in msg["l"]:
                    attempt.add_log(LogLine(level, _utc(ts), message, file, lineno))
            elif kind == "m":
                record = _record(msg["k"], msg["r"])
                attempt.measurements[record.key] = record
                attempt.send(LiveMeasurement(job_id, record.key, record))
            elif kind == "ui":
                attempt.send(LiveUiUpdate(job_id, msg["k"], msg.get("v")))
            elif kind == "att":
                att = AttachmentRecord(msg["n"], Path(msg["p"]), int(msg["s"]))
                attempt.attachments.append(att)
                attempt.send(LiveAttachment(job_id, att))
            elif kind == "imp" or kind == "ack":
                attempt.stage = "import"
            elif kind == "body":
                attempt.stage = "body"
            elif kind == "need":
                w.writer.write(self._give_message(request, msg["names"]))
            elif kind == "done":
                return msg  # type: ignore[no-any-return]

    def _reference(self, phase: PhaseSpec) -> tuple[str | None, str | None, str, str, str | None]:
        """(file, module, package, callable, refusal) for a phase, cached by reference."""
        return self._reference_of(phase.python or "")

    def _reference_of(self, text: str) -> tuple[str | None, str | None, str, str, str | None]:
        cached = self._refs.get(text)
        if cached is not None:
            return cached
        from tofu_tui.procedure.references import ReferenceError_, parse_reference

        try:
            ref = self.loaded.references.get(text) or parse_reference(text, self.directory, "phase")
        except ReferenceError_ as exc:
            result: tuple[str | None, str | None, str, str, str | None] = (None, None, "", "", str(exc))
        else:
            file = ref.file
            module = ref.module
            if module is None:
                try:
                    rel = file.resolve().relative_to(self.directory)
                    module = ".".join(rel.with_suffix("").parts)
                except ValueError:
                    module = None
            package = module.rpartition(".")[0] if module else ""
            fallback = None if ref.tree_bound else ref.module
            exists = file.is_file()
            result = (str(file), module if exists else fallback, package, ref.callable, None)
            if not exists and fallback is None:
                result = (None, None, "", "", f"Phase file not found: {file}")
        self._refs[text] = result
        return result

    def _job_message(self, request: AttemptRequest) -> bytes:
        file, module, package, name, refusal = self._reference(request.phase)
        ctx = {
            "slot_id": request.slot_id,
            "job_id": request.job_id,
            "retry_count": request.retry_count,
            "retry_limit": request.retry_limit,
            "run_metadata": request.run_metadata,
            "unit": request.unit,
            "attachments_dir": str(self.attachments_dir),
            "deadline_s": None
            if request.deadline is None
            else max(0.0, request.deadline - time.monotonic()),
        }
        msg = {
            "t": "job",
            "id": request.job_id,
            "key": request.phase.key,
            "file": file,
            "module": module,
            "package": package,
            "callable": name,
            "refusal": refusal,
            "ctx": ctx,
        }
        if request.next_python:
            msg["next"] = self._reference_of(request.next_python)[0]
        return (json.dumps(msg, separators=(",", ":"), default=str) + "\n").encode()

    def _give_message(self, request: AttemptRequest, names: list[str]) -> bytes:
        results = {}
        plugs = {}
        lower_plugs = {k.lower(): k for k in request.plugs}
        for name in names:
            view = request.results.get(name)
            if view is not None:
                results[name] = {
                    "outcome": str(view.outcome).lower(),
                    "duration_ms": view.duration_ms,
                    "measurements": {
                        k: _record_dict(r) for k, r in view.measurements.items()
                    },
                }
                continue
            plug_key = lower_plugs.get(name.lower())
            if plug_key is not None:
                plugs[plug_key] = _address_json(request.plugs[plug_key])
        msg = {
            "t": "give",
            "results": results,
            "plugs": plugs,
            "avail_results": sorted(request.results),
            "avail_plugs": sorted(request.plugs),
        }
        return (json.dumps(msg, separators=(",", ":"), default=str) + "\n").encode()

    def _finish(self, attempt: _Attempt, started: datetime, done: dict[str, Any]) -> AttemptResult:
        request = attempt.request
        if done.get("late"):  # it failed after its deadline: a timeout, whoever noticed first
            return self._timed_out(attempt, started)
        return AttemptResult(
            started_at=started,
            ended_at=datetime.now(UTC),
            error=done.get("error"),
            timed_out=False,
            signal=done.get("signal"),
            signal_message=done.get("smsg"),
            exit_code=None,
            measurements=attempt.measurements,
            logs=attempt.logs,
            attachments=attempt.attachments,
            unit=done.get("unit") or request.unit,
            run_metadata=rmeta if isinstance(rmeta := done.get("rmeta"), dict) else request.run_metadata,
        )

    def _error(self, attempt: _Attempt, started: datetime, message: str) -> AttemptResult:
        request = attempt.request
        attempt.add_log(LogLine("ERROR", datetime.now(UTC), message, "", 0))
        return AttemptResult(
            started_at=started,
            ended_at=datetime.now(UTC),
            error=message,
            timed_out=False,
            signal=None,
            signal_message=None,
            exit_code=None,
            measurements=attempt.measurements,
            logs=attempt.logs,
            attachments=attempt.attachments,
            unit=request.unit,
            run_metadata=request.run_metadata,
        )

    def _timed_out(self, attempt: _Attempt, started: datetime) -> AttemptResult:
        """§8: one ERROR line instead of the logs, no measurements, back-dated start."""
        request = attempt.request
        ended = datetime.now(UTC)
        seconds = _timeout_seconds(request.phase)
        if request.phase.timeout_ms:
            started = min(started, ended - timedelta(milliseconds=request.phase.timeout_ms))
        line = LogLine("ERROR", ended, f"Phase timed out after {seconds} seconds", "", 0)
        attempt.send(LiveLog(request.job_id, line))
        return AttemptResult(
            started_at=started,
            ended_at=ended,
            error=None,
            timed_out=True,
            signal=None,
            signal_message=None,
            exit_code=None,
            measurements={},
            logs=[line],
            attachments=attempt.attachments,
            unit=request.unit,
            run_metadata=request.run_metadata,
        )

    def _crash_message(self, w: _Worker, request: AttemptRequest) -> str:
        code = w.process.returncode
        phase = request.phase.key
        if code is None:
            what = "closed its channel"
        elif code < 0:
            what = f"was killed by {_signal_name(code)}"
        else:
            what = f"exited with code {code}"
        message = (
            f"The worker process running phase '{phase}' {what} (the phase called os._exit, "
            "crashed its interpreter or was killed); the worker was replaced."
        )
        detail = w.stderr_text()
        if detail:
            message += "\n" + detail
        return message

    @staticmethod
    async def _wait_until(awaitable: Any, deadline: float | None) -> Any:
        if deadline is None:
            return await awaitable
        try:
            return await asyncio.wait_for(awaitable, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise _Deadline() from None

    # -- shell phases ---------------------------------------------------------------

    async def _run_shell(self, attempt: _Attempt, started: datetime) -> AttemptResult:
        request = attempt.request
        spec = request.phase.executable
        assert spec is not None
        shell = spec.shell or ("powershell" if os.name == "nt" else "sh")
        program = shutil.which(shell)
        if program is None:
            return self._error(
                attempt,
                started,
                f"The shell '{shell}' for phase '{request.phase.key}' was not found on PATH; "
                "install it or set `executable.shell` to one that is installed (bash, sh, zsh, "
                "powershell, pwsh, cmd).",
            )
        argv = _shell_argv(shell, program, spec.command)
        cwd = self.directory
        if spec.working_directory:
            wd = Path(spec.working_directory).expanduser()
            cwd = wd if wd.is_absolute() else self.directory / wd
            if not cwd.is_dir():
                return self._error(
                    attempt,
                    started,
                    f"The working directory '{spec.working_directory}' of phase "
                    f"'{request.phase.key}' does not exist or is not a directory "
                    f"(resolved to {cwd}).",
                )
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=child_environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return self._error(attempt, started, f"Could not run the shell '{shell}': {exc}")
        capture = _ShellCapture(attempt)
        assert process.stdout is not None and process.stderr is not None
        readers = asyncio.gather(
            capture.read(process.stdout, "INFO"), capture.read(process.stderr, "ERROR")
        )
        waiter = asyncio.ensure_future(self._shell_wait(process, readers))

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

        try:
            loop = asyncio.get_running_loop()
            deadline = request.deadline
            if deadline is None:
                await waiter
            else:
                remaining = deadline - time.monotonic()
                done, _ = await asyncio.wait({waiter}, timeout=max(0.0, WARN_FRACTION * remaining))
                if not done:
                    self._warn(attempt)
                    done, _ = await asyncio.wait(
                        {waiter}, timeout=max(0.0, deadline - time.monotonic())
                    )
                if not done:
                    kill()
                    waiter.cancel()
                    readers.cancel()
                    with contextlib.suppress(BaseException):
                        await process.wait()
                    return self._timed_out(attempt, started)
            del loop
        except asyncio.CancelledError:
            kill()
            waiter.cancel()
            readers.cancel()
            raise
        code = process.returncode
        assert code is not None
        capture.finish()
        if code != 0:
            reason = f"killed by {_signal_name(code)}" if code < 0 else f"exited with code {code}"
            attempt.add_log(LogLine("ERROR", datetime.now(UTC), f"Command {reason}", "", 0))
        return AttemptResult(
            started_at=started,
            ended_at=datetime.now(UTC),
            error=None,
            timed_out=False,
            signal=None,
            signal_message=None,
            exit_code=code,
            measurements={},
            logs=attempt.logs,
            attachments=[],
            unit=request.unit,
            run_metadata=request.run_metadata,
        )

    @staticmethod
    async def _shell_wait(process: asyncio.subprocess.Process, readers: Any) -> None:
        # Background children may keep the pipes open: kill the group once the shell
        # itself is done, then collect what was written. process.wait() also waits for the
        # pipes (Python < 3.12), so while they are open watch for the shell's own exit.
        while process.returncode is None and not readers.done():
            await asyncio.wait({readers}, timeout=0.05)
        if process.returncode is None:  # its output closed, the shell still runs
            await process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await readers
        await process.wait()


class _Deadline(Exception):
    pass


def _shell_argv(shell: str, program: str, command: str) -> list[str]:
    if shell in ("powershell", "pwsh"):
        return [program, "-NoProfile", "-NonInteractive", "-Command", command]
    if shell == "cmd":
        return [program, "/d", "/s", "/c", command]
    return [program, "-c", command]


class _ShellCapture:
    """Shell output as log lines: capped line length, bounded head and tail."""

    def __init__(self, attempt: _Attempt) -> None:
        self.attempt = attempt
        self.count = 0
        self.dropped = 0
        self.tail: collections.deque[LogLine] = collections.deque(maxlen=SHELL_TAIL_LINES)

    def line(self, level: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        if len(text) > SHELL_LINE_CAP:
            text = f"{text[:SHELL_LINE_CAP]} [... {len(text) - SHELL_LINE_CAP} characters cut]"
        entry = LogLine(level, datetime.now(UTC), text, "", 0)
        if self.count < SHELL_HEAD_LINES:
            self.count += 1
            self.attempt.add_log(entry)
        else:
            if len(self.tail) == SHELL_TAIL_LINES:
                self.dropped += 1
            self.tail.append(entry)

    async def read(self, stream: asyncio.StreamReader, level: str) -> None:
        buf = bytearray()
        overflow = False
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                if not overflow:
                    self.line(level, bytes(buf[:nl]))
                overflow = False
                del buf[: nl + 1]
            if len(buf) > SHELL_LINE_CAP * 4:
                # A line with no end in sight (binary output): log its start, skip the rest.
                if not overflow:
                    self.line(level, bytes(buf))
                overflow = True
                buf.clear()
        if buf and not overflow:
            self.line(level, bytes(buf))

    def finish(self) -> None:
        if self.dropped:
            self.attempt.add_log(
                LogLine(
                    "WARNING",
                    datetime.now(UTC),
                    f"[{self.dropped} log lines omitted: the command wrote more than "
                    f"{SHELL_HEAD_LINES + SHELL_TAIL_LINES} lines]",
                    "",
                    0,
                )
            )
        for entry in self.tail:
            self.attempt.add_log(entry)
        self.tail.clear()


def _record(key: str, data: dict[str, Any]) -> MeasurementRecord:
    from tofu_tui.procedure.evaluate import MeasurementRecord

    return MeasurementRecord(key=key, **data)


def _record_dict(record: Any) -> dict[str, Any]:
    if hasattr(record, "model_dump"):
        return record.model_dump(mode="json")  # type: ignore[no-any-return]
    return dict(record)


def _address_json(address: Any) -> Any:
    if hasattr(address, "model_dump"):
        return address.model_dump(mode="json")
    if dataclasses.is_dataclass(address) and not isinstance(address, type):
        return dataclasses.asdict(address)
    return address

"""Phase worker: runs phases inside the procedure's own interpreter.

Standard library only: the procedure's environment has none of tofu-tui's packages, so
the engine loads this file by path (a `python -c` bootstrap in workerstart.py, so its
cached bytecode is used) and calls main() with argv `worker.py PROCEDURE_DIR CHANNEL_FD`.

The engine and the worker talk over a private socket (never the phase's stdout, which
phase code uses freely) with one compact JSON object per line:

engine -> worker
  {"t": "job", "id", "key", "file", "module", "package", "callable", "ctx": {...}, "next"}
                                        ("next": the file the engine expects to run after
                                        this one, compiled ahead; may be absent)
  {"t": "give", "results": {...}, "plugs": {...}, "avail_results", "avail_plugs"}
worker -> engine
  {"t": "ready", "pid"}                 once, after start-up
  {"t": "ack"}                          job received (§8 job acknowledgement; batched)
  {"t": "body"}                         import done, body starting (import watchdog)
  {"t": "need", "names": [...]}         parameters that are not built-ins
  {"t": "log", "l": [[level, ts, message, file, line], ...]}   batched
  {"t": "m", "k", "r": record}          a measurement record (full, after each change)
  {"t": "ui", "k", "v"}                 ui.<key> = v
  {"t": "att", "n", "p", "s"}           attachment copied into the engine's folder
  {"t": "done", "error", "signal", "smsg", "unit", "rmeta", "t0", "t1", "dropped", "late"}

Worker messages are batched (one write per batch, flushed every few ms, and always
with "done"), so a trivial phase costs one round trip. Process-global state persists
between jobs: the worker is long-lived; phases run on one long-lived non-main thread.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import io
import json
import math
import os
import re
import socket
import sys
import threading
import time
import traceback
import types
from typing import Any

LINE_CAP = 10_000  # characters kept of one output line
HEAD_LINES = 10_000  # log lines of one attempt streamed live
TAIL_LINES = 2_000  # last lines kept once the head is full
FLUSH_EVERY_S = 0.02
BATCH_LINES = 512

BUILTIN_NAMES = ("phase", "measurements", "log", "ui", "unit", "run", "attach")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:+-]{1,40}$")


# --- channel -----------------------------------------------------------------------


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.rfile = sock.makefile("rb", buffering=1 << 16)

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self.lock:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def recv(self) -> dict[str, Any] | None:
        line = self.rfile.readline()
        if not line:
            return None
        msg: dict[str, Any] = json.loads(line)
        return msg


# --- log capture -------------------------------------------------------------------


class LogSink:
    """The worker's outbox for one attempt: log lines and other messages, in order.

    Messages are batched (one socket write per batch, flushed every few ms or when a
    batch is full) so a trivial phase costs one write. A phase may print millions of
    lines: only HEAD_LINES go out live and the last TAIL_LINES are kept for the end,
    so neither the worker nor the engine grows without bound.
    """

    def __init__(self, channel: Channel | None, proc_dir: str) -> None:
        self.channel = channel
        self.prefix = proc_dir.rstrip(os.sep) + os.sep
        self.lock = threading.Lock()
        self.active = False
        self.pending: list[dict[str, Any]] = []
        self.latest: dict[tuple[str, str], int] = {}  # unsent "m"/"ui" message per key
        self.pending_lines = 0
        self.sent = 0
        self.dropped = 0
        self.tail: collections.deque[list[Any]] = collections.deque(maxlen=TAIL_LINES)
        self.wake = threading.Event()
        self.output: OutputBuffer | None = None  # print() text not yet split into lines

    def drain_output(self) -> None:
        if self.output is not None:
            self.output.drain()

    def begin(self) -> None:
        with self.lock:
            self.active = True
            self.pending = []
            self.latest.clear()
            self.pending_lines = 0
            self.sent = 0
            self.dropped = 0
            self.tail.clear()

    def post(self, msg: dict[str, Any], urgent: bool = False) -> None:
        self.drain_output()  # what the phase printed before this goes out before it
        with self.lock:
            if not self.active:
                return
            kind = msg["t"]
            if kind == "m" or kind == "ui":
                # A value rewritten before the batch went out replaces the unsent one:
                # a phase updating a measurement in a tight loop sends a few values, not all.
                slot = (kind, msg["k"])
                index = self.latest.get(slot)
                if index is not None:
                    self.pending[index] = msg
                    return
                self.latest[slot] = len(self.pending)
            self.pending.append(msg)
            if urgent:
                self._flush_locked()
            elif len(self.pending) == 1:
                self.wake.set()

    def log(self, level: str, message: str, file: str = "", line: int = 0) -> None:
        if not self.active:
            return
        self.drain_output()
        self.log_one(level, message, file, line)

    def log_one(self, level: str, message: str, file: str = "", line: int = 0) -> None:
        if len(message) > LINE_CAP:
            message = f"{message[:LINE_CAP]} [... {len(message) - LINE_CAP} characters cut]"
        if file and file.startswith(self.prefix):
            file = file[len(self.prefix) :]
        entry = [level, time.time(), message, file, line]
        with self.lock:
            if not self.active:
                return
            if self.sent < HEAD_LINES:
                self.sent += 1
                self._append_line(entry)
                if self.pending_lines >= BATCH_LINES:
                    self._flush_locked()
            else:
                if len(self.tail) == TAIL_LINES:
                    self.dropped += 1
                self.tail.append(entry)

    def log_lines(self, level: str, lines: list[str]) -> None:
        """Many output lines at once (already stripped, non-blank and capped)."""
        if not self.active or not lines:
            return
        now = time.time()
        with self.lock:
            if not self.active:
                return
            room = HEAD_LINES - self.sent
            if room > 0:
                head = lines[:room] if len(lines) > room else lines
                self.sent += len(head)
                pending = self.pending
                if not (pending and pending[-1]["t"] == "log"):
                    pending.append({"t": "log", "l": []})
                    if len(pending) == 1:
                        self.wake.set()
                pending[-1]["l"].extend([level, now, m, "", 0] for m in head)
                self.pending_lines += len(head)
                if self.pending_lines >= BATCH_LINES:
                    self._flush_locked()
                lines = lines[room:] if len(lines) > room else []
            if lines:
                total = len(self.tail) + len(lines)
                if total > TAIL_LINES:
                    self.dropped += total - TAIL_LINES
                self.tail.extend([level, now, m, "", 0] for m in lines[-TAIL_LINES:])

    def _append_line(self, entry: list[Any]) -> None:
        pending = self.pending
        if pending and pending[-1]["t"] == "log":
            pending[-1]["l"].append(entry)
        else:
            pending.append({"t": "log", "l": [entry]})
            if len(pending) == 1:
                self.wake.set()
        self.pending_lines += 1

    def flush(self) -> None:
        self.drain_output()
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.pending and self.channel is not None:
            batch, self.pending = self.pending, []
            self.pending_lines = 0
            self.latest.clear()
            data = "".join(
                json.dumps(m, separators=(",", ":"), allow_nan=False) + "\n" for m in batch
            )
            self.channel.send_raw(data.encode())

    def end(self, done: dict[str, Any]) -> None:
        """Stop collecting; send what is pending, the kept tail and `done` in one write."""
        self.drain_output()
        with self.lock:
            self.active = False
            if self.dropped:
                self._append_line(
                    [
                        "WARNING",
                        time.time(),
                        f"[{self.dropped} log lines omitted: the phase wrote more than "
                        f"{HEAD_LINES + TAIL_LINES} lines; the first {HEAD_LINES} and the "
                        f"last {TAIL_LINES} are kept]",
                        "",
                        0,
                    ]
                )
            for entry in self.tail:
                self._append_line(entry)
            self.tail.clear()
            done["dropped"] = self.dropped
            # `done` answers the job too: progress markers still unsent are no news.
            self.pending = [m for m in self.pending if m["t"] not in ("ack", "body")]
            self.pending.append(done)
            self._flush_locked()

    def flusher(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(FLUSH_EVERY_S)
            self.wake.clear()
            try:
                self.flush()
            except OSError:
                return


def _last_overwrite(line: str) -> str:
    """A carriage return overwrites the line on a terminal (progress bars): keep what
    would be left visible, so `\r`-updated bars log their final state once."""
    line = line.rstrip("\r")
    return line[line.rfind("\r") + 1 :]


def _clean_line(line: str) -> str:
    if "\r" in line:
        line = _last_overwrite(line)
    if len(line) > LINE_CAP:
        return f"{line[:LINE_CAP].strip()} [... {len(line) - LINE_CAP} characters cut]"
    return line.strip()


class OutputBuffer:
    """print() and sys.stdout/stderr writes, in order, turned into lines in bulk.

    A write only appends; text is split into lines when anything else is logged or
    posted (so the order holds), when the buffer is large, or by the flusher within a
    few milliseconds. Splitting many lines at once keeps a flood of prints cheap.
    """

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        self.items: list[tuple[LineSplitter, str]] = []
        self.size = 0
        self.lock = threading.Lock()
        self.drain_lock = threading.Lock()

    def write(self, splitter: LineSplitter, text: str) -> None:
        with self.lock:
            self.items.append((splitter, text))
            self.size += len(text)
            big = self.size > 65536
            first = len(self.items) == 1
        if big:
            self.drain()
        elif first:
            self.sink.wake.set()

    def drain(self) -> None:
        if not self.items:
            return
        with self.drain_lock:
            with self.lock:
                items, self.items, self.size = self.items, [], 0
            if not items:
                return
            current = items[0][0]
            texts: list[str] = []
            for splitter, text in items:
                if splitter is not current:
                    current.feed("".join(texts))
                    texts = []
                    current = splitter
                texts.append(text)
            current.feed("".join(texts))


class LineSplitter:
    """Turns a stream of text chunks into stripped, non-blank, length-capped lines."""

    def __init__(self, sink: LogSink, level: str) -> None:
        self.sink = sink
        self.level = level
        self.parts: list[str] = []
        self.size = 0
        self.overflow = 0
        self.lock = threading.Lock()

    def feed(self, text: str) -> None:
        if not text:
            return
        with self.lock:
            if "\n" not in text:
                if self.size + len(text) <= LINE_CAP:
                    self.parts.append(text)
                    self.size += len(text)
                else:
                    self._partial(text)
                return
            pieces = text.split("\n")
            last = pieces.pop()
            lines: list[str] = []
            if self.parts or self.overflow:
                self._partial(pieces[0])
                first = self._take()
                if first:
                    lines.append(first)
                del pieces[0]
            if pieces:
                if "\r" in text or max(map(len, pieces)) > LINE_CAP:
                    lines.extend(filter(None, map(_clean_line, pieces)))
                else:
                    lines.extend(filter(None, map(str.strip, pieces)))
            if lines:
                self.sink.log_lines(self.level, lines)
            if last:
                self._partial(last)

    def _partial(self, piece: str) -> None:
        if not piece:
            return
        if self.size + len(piece) <= LINE_CAP:
            self.parts.append(piece)
            self.size += len(piece)
            return
        room = LINE_CAP - self.size
        if room <= 0:
            self.overflow += len(piece)
            return
        if len(piece) > room:
            self.overflow += len(piece) - room
            piece = piece[:room]
        self.parts.append(piece)
        self.size += len(piece)

    def _take(self) -> str:
        """The pending partial line, cleaned; resets it."""
        line = "".join(self.parts)
        if "\r" in line:
            line = _last_overwrite(line)
        line = line.strip()
        if self.overflow:
            line = f"{line} [... {self.overflow} characters cut]"
        self.parts = []
        self.size = 0
        self.overflow = 0
        return line

    def _emit(self) -> None:
        line = self._take()
        if line:
            self.sink.log_lines(self.level, [line])

    def finish(self) -> None:
        with self.lock:
            if self.parts or self.overflow:
                self._emit()


class _BinaryWriter:
    def __init__(self, stream: CapturedStream) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: bytes) -> int:
        self.stream.write(self.decoder.decode(bytes(data)))
        return len(data)

    def flush(self) -> None:
        pass


class CapturedStream(io.TextIOBase):
    """Replaces sys.stdout / sys.stderr: every line becomes a log line."""

    def __init__(self, splitter: LineSplitter, fd: int, output: OutputBuffer | None = None) -> None:
        super().__init__()
        self.splitter = splitter
        self.output = output
        self._fd = fd
        self.buffer = _BinaryWriter(self)
        self.name = "<stdout>" if fd == 1 else "<stderr>"
        self.mode = "w"
        self.line_buffering = True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.output is not None:
            self.output.write(self.splitter, text)
        else:
            self.splitter.feed(text)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # a phase closing sys.stdout must not break the next phase's output

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return False

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def reconfigure(self, **kwargs: Any) -> None:
        pass


class FdCapture:
    """Output written below Python (C code, child processes) to fd 1 or 2.

    The fd is redirected to a pipe that a thread drains into log lines. At the end of
    a job the job thread drains it too, under the same lock, so everything written
    before the phase returned is in that phase's logs.
    """

    def __init__(self, fd: int, splitter: LineSplitter) -> None:
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        os.set_blocking(r, False)
        self.fd = r
        self.splitter = splitter
        self.lock = threading.Lock()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        threading.Thread(target=self._loop, daemon=True).start()

    def drain(self) -> bool:
        """Read what is there now; False at end of file."""
        with self.lock:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    return True
                except OSError:
                    return False
                if not chunk:
                    return False
                self.splitter.feed(self.decoder.decode(chunk))

    def _loop(self) -> None:
        import select

        while True:
            try:
                select.select([self.fd], [], [])
            except (OSError, ValueError):
                return
            if not self.drain():
                return


# --- JSON values -------------------------------------------------------------------


class NonFiniteError(ValueError):
    pass


def _json_default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, _ValueLike):  # this phase's measurement, or an earlier phase's (prev.measurements.x)
        return obj.value
    try:
        return float(obj)
    except (TypeError, ValueError):
        raise TypeError(f"{type(obj).__name__} value is not JSON-serialisable") from None


def to_json(value: Any, what: str, job: Job | None = None) -> Any:
    """Checks a value can travel as JSON; returns it as plain JSON data. A non-finite
    number in a measurement (`job` given) makes the attempt ERROR even if caught."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int or (kind is float and math.isfinite(value)):
        return value  # already plain JSON: the round trip below would hand back an equal copy
    try:
        text = json.dumps(value, allow_nan=False, default=_json_default)
    except ValueError as exc:
        if "Out of range float" in str(exc):
            message = f"{what} is NaN or infinite; only finite numbers can be recorded"
            if job is not None and job.fatal is None:
                job.fatal = message
            raise NonFiniteError(message) from None
        raise
    except TypeError as exc:
        raise TypeError(f"{what}: {exc}") from None
    return json.loads(text)


# --- phase API ---------------------------------------------------------------------


class PhaseSignal(Exception):
    kind = ""

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg)
        self.msg = "" if msg is None else str(msg)


class PhaseFail(PhaseSignal):
    kind = "fail"


class PhaseSkip(PhaseSignal):
    kind = "skip"


class PhaseRetry(PhaseSignal):
    kind = "retry"


class PhaseStop(PhaseSignal):
    kind = "stop"


class PhaseControl:
    Fail = PhaseFail
    Skip = PhaseSkip
    Retry = PhaseRetry
    Stop = PhaseStop

    def fail(self, msg: str = "") -> None:
        raise PhaseFail(msg)

    def skip(self, msg: str = "") -> None:
        raise PhaseSkip(msg)

    def retry(self, msg: str = "") -> None:
        raise PhaseRetry(msg)

    def stop(self, msg: str = "") -> None:
        raise PhaseStop(msg)


class PhaseLogger:
    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def _log(self, level: str, msg: Any) -> None:
        frame = sys._getframe(2)
        self._sink.log(level, str(msg), frame.f_code.co_filename, frame.f_lineno)

    def debug(self, msg: Any) -> None:
        self._log("DEBUG", msg)

    def info(self, msg: Any) -> None:
        self._log("INFO", msg)

    def warning(self, msg: Any) -> None:
        self._log("WARNING", msg)

    def error(self, msg: Any) -> None:
        self._log("ERROR", msg)


def _coerce_scalar(key: str, value: Any) -> Any:
    if isinstance(value, _ValueLike):  # a measurement read back: this phase's or an earlier one's
        value = value.value
    if value is None or isinstance(value, bool | str | list | dict):
        return value
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"measurement '{key}': a {type(value).__name__} value cannot be recorded "
            f"(use a number, bool, str, list, dict or None): {exc}"
        ) from None


class _Namespace:
    """Attribute bag whose writes call back (aggregations, y axes)."""

    def __init__(self, on_set: Any, on_get: Any) -> None:
        object.__setattr__(self, "_on_set", on_set)
        object.__setattr__(self, "_on_get", on_get)

    def __setattr__(self, name: str, value: Any) -> None:
        self._on_set(name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._on_get(name)

    __setitem__ = __setattr__

    def __getitem__(self, name: str) -> Any:
        return self._on_get(name)


class _ValueLike:
    """Behaves like the wrapped value for comparisons and conversions."""

    @property
    def value(self) -> Any:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return bool(self.value == other)

    def __ne__(self, other: object) -> bool:
        return bool(self.value != other)

    def __lt__(self, other: Any) -> bool:
        return bool(self.value < other)

    def __le__(self, other: Any) -> bool:
        return bool(self.value <= other)

    def __gt__(self, other: Any) -> bool:
        return bool(self.value > other)

    def __ge__(self, other: Any) -> bool:
        return bool(self.value >= other)

    __hash__ = None  # type: ignore[assignment]

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Any:
        return iter(self.value)

    def __getitem__(self, item: Any) -> Any:
        return self.value[item]

    def __contains__(self, item: Any) -> bool:
        return item in self.value

    def __neg__(self) -> Any:
        return -self.value

    def __abs__(self) -> Any:
        return abs(self.value)

    def __round__(self, ndigits: int | None = None) -> Any:
        return round(self.value, ndigits)


def _delegate(op: str) -> Any:
    import operator

    fn = getattr(operator, op)

    def forward(self: _ValueLike, other: Any) -> Any:
        return fn(self.value, other)

    def reverse(self: _ValueLike, other: Any) -> Any:
        return fn(other, self.value)

    return forward, reverse


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):
    _fwd, _rev = _delegate(_op)
    setattr(_ValueLike, f"__{_op}__", _fwd)
    setattr(_ValueLike, f"__r{_op}__", _rev)


class MeasurementHandle(_ValueLike):
    """What `measurements.<key>` reads as: the value, plus aggregations and axes."""

    def __init__(self, owner: Measurements, key: str) -> None:
        self._owner = owner
        self._key = key

    def _rec(self) -> dict[str, Any]:
        return self._owner._record(self._key)

    @property
    def value(self) -> Any:
        return self._rec()["v"]

    @property
    def aggregations(self) -> _Namespace:
        def on_set(name: str, value: Any) -> None:
            rec = self._rec()
            rec["a"][name] = to_json(
                _coerce_scalar(self._key, value),
                f"measurement '{self._key}' aggregation '{name}'",
                self._owner._job,
            )
            self._owner._changed(self._key)

        def on_get(name: str) -> Any:
            try:
                return self._rec()["a"][name]
            except KeyError:
                raise AttributeError(f"measurement '{self._key}' has no aggregation '{name}'") from None

        return _Namespace(on_set, on_get)

    @property
    def x_axis(self) -> Any:
        return self._rec()["x"]

    @x_axis.setter
    def x_axis(self, data: Any) -> None:
        rec = self._rec()
        rec["x"] = self._axis_data(data, "x_axis")
        self._owner._changed(self._key)

    @property
    def y_axis(self) -> _Namespace:
        def on_set(name: str, data: Any) -> None:
            if isinstance(data, _AxisHandle):
                return  # `m.y_axis.v.aggregations.x = ...` re-assigns the axis itself
            rec = self._rec()
            axes = rec["y"] if rec["y"] is not None else {}
            old = axes.get(name)
            axes[name] = {
                "data": self._axis_data(data, f"y_axis.{name}"),
                "aggregations": old["aggregations"] if old else {},
            }
            rec["y"] = axes
            self._owner._changed(self._key)

        def on_get(name: str) -> Any:
            axes = self._rec()["y"] or {}
            if name not in axes:
                raise AttributeError(
                    f"measurement '{self._key}' has no y axis '{name}' yet; assign a list first"
                )
            return _AxisHandle(self, name)

        return _Namespace(on_set, on_get)

    def _axis_data(self, data: Any, what: str) -> list[Any]:
        if isinstance(data, tuple) or hasattr(data, "tolist"):
            data = list(data.tolist() if hasattr(data, "tolist") else data)
        if not isinstance(data, list):
            raise TypeError(
                f"measurement '{self._key}' {what} must be a list, not {type(data).__name__}"
            )
        out: list[Any] = to_json(data, f"measurement '{self._key}' {what}", self._owner._job)
        return out


class _AxisHandle(_ValueLike):
    def __init__(self, handle: MeasurementHandle, name: str) -> None:
        self._handle = handle
        self._name = name

    def _axis(self) -> dict[str, Any]:
        axes: dict[str, Any] = self._handle._rec()["y"]
        return axes[self._name]  # type: ignore[no-any-return]

    @property
    def value(self) -> Any:
        return self._axis()["data"]

    data = value

    @property
    def aggregations(self) -> _Namespace:
        key = self._handle._key

        def on_set(name: str, value: Any) -> None:
            self._axis()["aggregations"][name] = to_json(
                _coerce_scalar(key, value),
                f"measurement '{key}' y_axis.{self._name} aggregation",
                self._handle._owner._job,
            )
            self._handle._owner._changed(key)

        def on_get(name: str) -> Any:
            return self._axis()["aggregations"][name]

        return _Namespace(on_set, on_get)


class Measurements:
    _job: Job
    _records: dict[str, dict[str, Any]]

    def __init__(self, job: Job) -> None:
        object.__setattr__(self, "_job", job)
        object.__setattr__(self, "_records", {})

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            return
        if isinstance(value, MeasurementHandle):
            if value._key == key and value._owner is self:
                return  # `m = measurements.k; ...; measurements.k = m`
            value = value.value
        value = _coerce_scalar(key, value)
        value = to_json(value, f"measurement '{key}'", self._job)
        self._records[key] = {"v": value, "hv": True, "a": {}, "x": None, "y": None}
        self._changed(key)

    __setitem__ = __setattr__

    def __getattr__(self, key: str) -> MeasurementHandle:
        if key.startswith("__"):
            raise AttributeError(key)
        return MeasurementHandle(self, key)

    __getitem__ = __getattr__

    def _record(self, key: str) -> dict[str, Any]:
        rec: dict[str, Any] | None = self._records.get(key)
        if rec is None:
            rec = {"v": None, "hv": False, "a": {}, "x": None, "y": None}
            self._records[key] = rec
        return rec

    def _changed(self, key: str) -> None:
        if key.startswith("_"):
            return
        rec = self._records[key]
        if not rec["hv"] and (rec["x"] is None or not rec["y"]):
            return  # a multi-dimensional record exists once x and one y axis are set
        self._job.send_measurement(key, rec)


class Unit:
    _FIELDS = ("serial_number", "part_number", "revision_number", "batch_number")
    serial_number: str | None
    part_number: str | None
    revision_number: str | None
    batch_number: str | None
    sub_units: SubUnits
    metadata: Metadata

    def __init__(self, data: dict[str, Any]) -> None:
        for name in self._FIELDS:
            object.__setattr__(self, name, data.get(name))
        object.__setattr__(self, "sub_units", SubUnits(data.get("sub_units") or {}))
        object.__setattr__(self, "metadata", Metadata(data.get("metadata") or {}, "unit.metadata"))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._FIELDS:
            if value is not None and not isinstance(value, str):
                raise TypeError(f"unit.{name} must be a string or None, not {type(value).__name__}")
            object.__setattr__(self, name, value)
        elif name == "metadata":
            object.__setattr__(self, name, Metadata(dict(value), "unit.metadata"))
        elif name == "sub_units":
            subs = SubUnits(dict(object.__getattribute__(self, "sub_units")))
            for k, v in dict(value).items():
                subs[k] = v
            object.__setattr__(self, name, subs)
        else:
            raise AttributeError(f"unit has no field '{name}'")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self._FIELDS}
        out["sub_units"] = dict(self.sub_units)
        out["metadata"] = dict(self.metadata)
        return out


class SubUnits(dict):  # type: ignore[type-arg]
    """Sub-unit serials by key: case-insensitive, readable as attributes, no new keys."""

    def _real(self, key: Any) -> str:
        if isinstance(key, str):
            low = key.lower()
            for k in dict.keys(self):
                if k.lower() == low:
                    return str(k)
        declared = ", ".join(sorted(dict.keys(self))) or "none"
        raise KeyError(f"no sub-unit '{key}' (declared: {declared})")

    def __getitem__(self, key: Any) -> Any:
        return dict.__getitem__(self, self._real(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"sub-unit serial must be a string, not {type(value).__name__}")
        dict.__setitem__(self, self._real(key), value)

    def __contains__(self, key: object) -> bool:
        try:
            self._real(key)
        except KeyError:
            return False
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delitem__(self, key: Any) -> None:
        raise TypeError("sub-units cannot be removed")

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self[key]

    def pop(self, *args: Any) -> Any:
        raise TypeError("sub-units cannot be removed")

    def popitem(self) -> Any:
        raise TypeError("sub-units cannot be removed")

    def clear(self) -> None:
        raise TypeError("sub-units cannot be removed")


class Metadata(dict):  # type: ignore[type-arg]
    """unit.metadata / run.metadata: every write is checked (§4 Metadata)."""

    def __init__(self, data: dict[str, Any], what: str) -> None:
        super().__init__()
        self._what = what
        for k, v in data.items():
            dict.__setitem__(self, k, v)

    def __setitem__(self, key: Any, value: Any) -> None:
        what = self._what
        if not isinstance(key, str):
            raise TypeError(f"{what} keys must be strings, not {type(key).__name__}")
        if not _METADATA_KEY.match(key):
            raise ValueError(
                f"{what} key '{key}' is invalid: use 1-40 characters from A-Z a-z 0-9 _ . : + -"
            )
        if key not in self and len(self) >= 50:
            raise ValueError(f"{what} holds at most 50 keys; '{key}' would be the 51st")
        if not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"{what}['{key}'] must be a str, int, float or bool, not {type(value).__name__}"
            )
        if isinstance(value, str) and len(value) > 50_000:
            raise ValueError(f"{what}['{key}'] is longer than 50000 characters")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what}['{key}'] must be a finite number")
        dict.__setitem__(self, key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class RunInfo:
    def __init__(self, ctx: dict[str, Any]) -> None:
        self.slot_id: str = ctx.get("slot_id", "default")
        self.job_id: str = ctx.get("job_id", "")
        self.retry_count: int = ctx.get("retry_count", 0)
        self.retry_limit: int = ctx.get("retry_limit", 3)
        self.metadata = Metadata(ctx.get("run_metadata") or {}, "run.metadata")


class UiWriter:
    def __init__(self, job: Job) -> None:
        object.__setattr__(self, "_job", job)

    def __setattr__(self, key: str, value: Any) -> None:
        self._job.worker.sink.post({"t": "ui", "k": key, "v": to_json(value, f"ui.{key}")})

    __setitem__ = __setattr__

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        raise AttributeError(f"ui.{key} is write-only: a phase cannot read its prompt's answers")


class Attach:
    def __init__(self, job: Job) -> None:
        self._job = job

    def file(self, file_path: Any, attachment_name: str | None = None) -> None:
        path = os.path.expanduser(os.fspath(file_path))
        if not os.path.isabs(path):
            path = os.path.join(self._job.proc_dir, path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"attach.file: no such file: {path}")
        name = attachment_name or os.path.basename(path)
        self._job.store_attachment(name, source=path)

    def data(self, data: bytes, attachment_name: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"attach.data needs bytes, not {type(data).__name__}")
        if not attachment_name:
            raise ValueError("attach.data needs an attachment_name")
        self._job.store_attachment(str(attachment_name), data=bytes(data))


class ResultView:
    """An earlier phase's latest attempt, as a parameter (§4 rule 2)."""

    def __init__(self, key: str, data: dict[str, Any]) -> None:
        self.key = key
        self.outcome: str = data.get("outcome", "")
        self.duration_ms: float = data.get("duration_ms", 0.0)
        self.measurements = _RecordedMeasurements(key, data.get("measurements") or {})

    def __repr__(self) -> str:
        return f"<result of phase {self.key!r}: {self.outcome}>"


class _RecordedMeasurements:
    def __init__(self, phase_key: str, records: dict[str, Any]) -> None:
        self._phase_key = phase_key
        self._records = records

    def __getattr__(self, key: str) -> _RecordedValue:
        if key.startswith("__"):
            raise AttributeError(key)
        if key not in self._records:
            have = ", ".join(sorted(self._records)) or "none"
            raise AttributeError(
                f"phase '{self._phase_key}' recorded no measurement '{key}' (recorded: {have})"
            )
        return _RecordedValue(key, self._records[key])

    __getitem__ = __getattr__

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __iter__(self) -> Any:
        return iter(self._records)


class _AxisData(list):  # type: ignore[type-arg]
    aggregations: Any = None


class _RecordedValue(_ValueLike):
    def __init__(self, key: str, rec: dict[str, Any]) -> None:
        self._key = key
        self._rec = rec

    @property
    def value(self) -> Any:
        return self._rec.get("value")

    @property
    def aggregations(self) -> Any:
        return _ReadOnly(f"measurement '{self._key}' aggregation", self._rec.get("aggregations") or {})

    @property
    def x_axis(self) -> Any:
        return self._rec.get("x_axis")

    @property
    def y_axis(self) -> Any:
        axes = {}
        for name, axis in (self._rec.get("y_axis") or {}).items():
            data = _AxisData(axis.get("data") or [])
            data.aggregations = _ReadOnly(f"y axis '{name}' aggregation", axis.get("aggregations") or {})
            axes[name] = data
        return _ReadOnly(f"measurement '{self._key}' y axis", axes)


class _ReadOnly:
    def __init__(self, what: str, data: dict[str, Any]) -> None:
        self._what = what
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"no {self._what} '{name}'") from None

    __getitem__ = __getattr__

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def __iter__(self) -> Any:
        return iter(self._data)


# --- job execution -----------------------------------------------------------------

_fault_file: Any = None  # kept open for faulthandler: crash tracebacks reach the engine
_code_cache: dict[tuple[str, int, int], types.CodeType] = {}
_signature_cache: dict[Any, list[tuple[str, str, bool]]] = {}


def compiled_module(path: str) -> types.CodeType:
    """The module's code object, compiled once per version of the file."""
    st = os.stat(path)
    cache_key = (path, st.st_mtime_ns, st.st_size)
    code = _code_cache.get(cache_key)
    if code is None:
        with open(path, "rb") as fh:
            source = fh.read()
        code = compile(source, path, "exec", dont_inherit=True)
        _code_cache[cache_key] = code
    return code


def prefetch_module(path: str) -> None:
    """Compile the module the engine expects to run next, while the engine is busy with
    the attempt that just ended: compiling only, nothing of the phase runs early."""
    with contextlib.suppress(Exception):  # the real job reports any problem with the file
        compiled_module(path)


def load_phase_module(path: str, name: str, package: str) -> types.ModuleType:
    """Loads the module fresh from its file: module code re-runs, sys.modules is left alone."""
    code = compiled_module(path)
    module = types.ModuleType(name)
    module.__file__ = path
    module.__package__ = package
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    # Some libraries (dataclasses, typing) look the module up while it executes; make it
    # visible only for that long, then restore whatever was there.
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    return module


def parameters_of(fn: Any) -> list[tuple[str, str, bool]]:
    """(name, kind, has_default) for each parameter; kind: 'kw', 'posonly', 'var'."""
    code = getattr(fn, "__code__", None)
    key = code if code is not None and isinstance(fn, types.FunctionType) else None
    if key is not None and key in _signature_cache:
        return _signature_cache[key]
    if key is not None:
        assert code is not None
        nargs = code.co_argcount
        nkw = code.co_kwonlyargcount
        names = code.co_varnames
        defaults = fn.__defaults__ or ()
        kwdefaults = fn.__kwdefaults__ or {}
        first_default = nargs - len(defaults)
        out: list[tuple[str, str, bool]] = []
        for i in range(nargs):
            kind = "posonly" if i < code.co_posonlyargcount else "kw"
            out.append((names[i], kind, i >= first_default))
        for i in range(nargs, nargs + nkw):
            out.append((names[i], "kw", names[i] in kwdefaults))
        _signature_cache[key] = out
        return out
    import inspect

    result = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = "posonly" if p.kind == p.POSITIONAL_ONLY else "kw"
        result.append((p.name, kind, p.default is not p.empty))
    return result


class Job:
    def __init__(self, worker: Worker, msg: dict[str, Any]) -> None:
        self.worker = worker
        self.channel = worker.channel
        self.proc_dir = worker.proc_dir
        self.msg = msg
        self.ctx: dict[str, Any] = msg.get("ctx") or {}
        deadline_s = self.ctx.get("deadline_s")
        # Plug proxies made later for this job get deadlines at or after this one.
        self.deadline: float | None = None if deadline_s is None else time.monotonic() + float(deadline_s)
        self.fatal: str | None = None
        self.attach_count = 0
        self.unit = Unit(self.ctx.get("unit") or {})
        self.run = RunInfo(self.ctx)

    def send_measurement(self, key: str, rec: dict[str, Any]) -> None:
        record = {
            "value": rec["v"],
            "has_value": rec["hv"],
            "aggregations": dict(rec["a"]),
            "x_axis": rec["x"],
            "y_axis": None
            if rec["y"] is None
            else {k: {"data": v["data"], "aggregations": dict(v["aggregations"])} for k, v in rec["y"].items()},
        }
        self.worker.sink.post({"t": "m", "k": key, "r": record})

    def store_attachment(self, name: str, data: bytes = b"", source: str | None = None) -> None:
        """Copy into the engine's attachment folder now: the phase may change or delete
        its file afterwards, and the engine owns what it uploads."""
        folder = self.ctx.get("attachments_dir") or self.proc_dir
        os.makedirs(folder, exist_ok=True)
        self.attach_count += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(name))[:100] or "attachment"
        job = re.sub(r"[^A-Za-z0-9_.-]", "_", str(self.msg.get("id", "job")))[:100]
        unique = os.urandom(4).hex()  # runs may share a folder and reuse job ids
        path = os.path.join(folder, f"{job}-{self.attach_count}-{unique}-{safe}")
        if source is not None:
            import shutil

            shutil.copyfile(source, path)
        else:
            with open(path, "wb") as fh:
                fh.write(data)
        size = os.path.getsize(path)
        self.worker.sink.post({"t": "att", "n": name, "p": path, "s": size})

    # -- the body ------------------------------------------------------------------

    def resolve_callable(self) -> Any:
        msg = self.msg
        if msg.get("refusal"):
            raise _Refusal(msg["refusal"])
        file = msg.get("file")
        name = msg["callable"]
        if file and os.path.isfile(file):
            module = load_phase_module(file, msg.get("module") or "__phase__", msg.get("package") or "")
        elif msg.get("module"):
            import importlib

            module = importlib.import_module(msg["module"])
        else:
            raise _Refusal(f"Phase file not found: {file}")
        fn = getattr(module, name, None)
        if fn is None:
            raise _Refusal(f"{self._where()} has no function '{name}'")
        if not callable(fn):
            raise _Refusal(f"'{name}' in {self._where()} is not callable")
        return fn

    def _where(self) -> str:
        file = self.msg.get("file")
        if file and os.path.isfile(file):
            return os.path.relpath(file, self.proc_dir) if file.startswith(self.proc_dir) else file
        return f"module '{self.msg.get('module')}'"

    def build_kwargs(self, fn: Any) -> dict[str, Any]:
        params = parameters_of(fn)
        builtins: dict[str, Any] = {}
        others: list[str] = []
        for pname, kind, has_default in params:
            if kind == "posonly":
                if not has_default:
                    raise _Refusal(
                        f"parameter '{pname}' is positional-only and cannot be filled: "
                        "the engine passes keyword arguments only"
                    )
                continue
            if pname in BUILTIN_NAMES:
                builtins[pname] = self.builtin(pname)
            else:
                others.append(pname)
        if not others:
            return builtins
        self.worker.sink.post({"t": "need", "names": others}, urgent=True)
        reply = self.worker.wait_give()
        results: dict[str, Any] = reply.get("results") or {}
        plugs: dict[str, Any] = reply.get("plugs") or {}
        plugs_lower = {k.lower(): (k, v) for k, v in plugs.items()}
        missing = []
        for pname, _kind, has_default in params:
            if pname not in others:
                continue
            if pname in results:
                builtins[pname] = ResultView(pname, results[pname])
            elif pname.lower() in plugs_lower:
                key, address = plugs_lower[pname.lower()]
                builtins[pname] = self.worker.plug_proxy(key, address, self.ctx)
            elif not has_default:
                missing.append(pname)
        if missing:
            avail_plugs = ", ".join(reply.get("avail_plugs") or []) or "none"
            avail_results = ", ".join(reply.get("avail_results") or []) or "none"
            names = ", ".join(f"'{m}'" for m in missing)
            raise _Refusal(
                f"cannot resolve parameter {names}: it is not a built-in "
                f"({', '.join(BUILTIN_NAMES)}), an earlier phase's result or a plug. "
                f"Available plugs: {avail_plugs}. Available results: {avail_results}."
            )
        return builtins

    def builtin(self, name: str) -> Any:
        if name == "phase":
            return PhaseControl()
        if name == "measurements":
            return Measurements(self)
        if name == "log":
            return self.worker.logger
        if name == "ui":
            return UiWriter(self)
        if name == "unit":
            return self.unit
        if name == "run":
            return self.run
        return Attach(self)

    def execute(self) -> dict[str, Any]:
        done: dict[str, Any] = {"t": "done", "error": None, "signal": None, "smsg": None}
        try:
            fn = self.resolve_callable()
            kwargs = self.build_kwargs(fn)
            self.worker.sink.post({"t": "body"})
            result = fn(**kwargs)
            if isinstance(result, types.CoroutineType):
                result.close()  # never awaited: no "coroutine was never awaited" warning in the logs
                done["error"] = (
                    "The phase is an async function: the engine calls phases with plain keyword arguments and "
                    "does not await them. Define it with `def` and run async code inside it with asyncio.run(...)."
                )
            elif result is not None:
                text = repr(result)
                if len(text) > 200:
                    text = text[:200] + "..."
                done["error"] = (
                    f"Phase returned a value ({text}); a phase must return None. Record data "
                    "with measurements and set the outcome with phase.fail()/skip()/retry()/stop()."
                )
        except PhaseSignal as sig:
            done["signal"] = sig.kind
            done["smsg"] = sig.msg
            if sig.msg:
                frame = _user_frame(sig.__traceback__)
                self.worker.sink.log("INFO", sig.msg, *(frame or ("", 0)))
        except _Refusal as exc:
            done["error"] = str(exc)
            self.worker.sink.log("ERROR", str(exc))
        except SystemExit as exc:
            code = "" if exc.code is None else repr(exc.code) if isinstance(exc.code, str) else str(exc.code)
            done["error"] = f"Phase called sys.exit({code})"
            self.worker.sink.log("ERROR", done["error"], *(_user_frame(exc.__traceback__) or ("", 0)))
        except BaseException as exc:
            text = _format_exception(exc) + _hint(exc, self.msg.get("module"), self.proc_dir)
            done["error"] = text
            self.worker.sink.log("ERROR", text, *(_user_frame(exc.__traceback__) or ("", 0)))
        if self.fatal and not done["error"]:
            done["error"] = self.fatal
            done["signal"] = None
        if done["error"] and self.deadline is not None and time.monotonic() >= self.deadline:
            # The phase failed because its time ran out here (a plug call bounded by the
            # phase deadline raised): the engine's watchdog may not have fired yet on a
            # busy machine, and its verdict must not depend on who is first (Q8).
            done["late"] = True
        done["unit"] = self.unit.as_dict()
        done["rmeta"] = dict(self.run.metadata)
        return done


class _Refusal(Exception):
    """A problem with the phase reference or its parameters (ERROR, no traceback)."""


def _user_frame(tb: types.TracebackType | None) -> tuple[str, int] | None:
    last = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != __file__:
            last = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return last


def _hint(exc: BaseException, module: str | None, proc_dir: str) -> str:
    """What to do, for failures that come from how phases run rather than from the phase's logic."""
    top = ((exc.name or "") if isinstance(exc, ModuleNotFoundError) else "").split(".")[0]
    if top and not any(os.path.exists(os.path.join(proc_dir, top + end)) for end in ("", ".py")):
        return (
            f"\nThis phase runs on {sys.executable}: install the procedure's dependencies into that "
            "environment, or put a venv/ or .venv/ beside procedure.yaml."
        )
    if module and type(exc).__name__ == "PicklingError" and module in str(exc):
        return (
            "\nA phase module is loaded fresh on every attempt and is not importable by name, so functions "
            "and classes defined in it cannot be pickled (multiprocessing, concurrent.futures). "
            "Move them into a helper module and import that from the phase."
        )
    return ""


def _format_exception(exc: BaseException) -> str:
    # The author's frames only: neither the worker's call into the phase nor the phase
    # API's or plug proxy's own frames (e.g. a value that cannot be recorded raises in here).
    shown = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    engine = os.path.dirname(os.path.abspath(__file__))  # worker.py, and the plug proxies of plughost.py
    frames = [frame for frame in shown.stack if os.path.dirname(os.path.abspath(frame.filename)) != engine]
    if frames:
        shown.stack = traceback.StackSummary.from_list(frames)
    return "".join(shown.format()).rstrip()


# --- the worker process ------------------------------------------------------------


class Worker:
    def __init__(self, proc_dir: str, channel: Channel) -> None:
        self.proc_dir = proc_dir
        self.channel = channel
        self.sink = LogSink(channel, proc_dir)
        self.logger = PhaseLogger(self.sink)
        self.out = LineSplitter(self.sink, "INFO")
        self.err = LineSplitter(self.sink, "WARNING")
        self.plughost: Any = None
        self.fd_out: Any = None
        self.fd_err: Any = None
        self.stdout: Any = None
        self.stderr: Any = None
        self.capture: Any = None
        self.root_logger: Any = None
        self.is_fork_child = False

    def wait_give(self) -> dict[str, Any]:
        msg = self.channel.recv()
        if msg is None:
            raise SystemExit("the engine went away")
        return msg

    def plug_proxy(self, key: str, address: Any, ctx: dict[str, Any]) -> Any:
        if self.plughost is None:
            import importlib.util

            here = os.path.dirname(os.path.abspath(__file__))
            spec = importlib.util.spec_from_file_location(
                "_tofu_tui_plughost", os.path.join(here, "plughost.py")
            )
            if spec is None or spec.loader is None:
                raise _Refusal("plug support is missing (plughost.py not found next to the worker)")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.plughost = module
        make = getattr(self.plughost, "make_proxy", None)
        if make is not None:
            return make(key, address, ctx.get("deadline_s"))
        return self.plughost.PlugProxy(key, address)

    def install_capture(self) -> None:
        import logging

        # Output written below Python (C code, child processes) goes to fds 1/2;
        # route both through pipes read here so it becomes log lines too.
        # Separate splitters: a partial line from print() must not glue onto a child's.
        self.fd_out = FdCapture(1, LineSplitter(self.sink, "INFO"))
        self.fd_err = FdCapture(2, LineSplitter(self.sink, "WARNING"))
        output = OutputBuffer(self.sink)
        self.sink.output = output
        self.stdout = CapturedStream(self.out, 1, output)
        self.stderr = CapturedStream(self.err, 2, output)
        sys.stdout = self.stdout  # type: ignore[assignment]
        sys.stderr = self.stderr  # type: ignore[assignment]

        sink = self.sink

        class Capture(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    message = record.getMessage()
                    if record.exc_info:
                        message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
                    sink.log(record.levelname, message, record.pathname, record.lineno)
                except Exception:
                    pass

        root = logging.getLogger()
        self.capture = Capture()
        root.addHandler(self.capture)
        root.setLevel(logging.INFO)
        self.root_logger = root
        threading.Thread(target=self.sink.flusher, daemon=True).start()

    def reset_process(self) -> None:
        """Undo what one phase may have changed for the next: its output streams, the
        log capture handler and the working directory. Other process state is kept."""
        if sys.stdout is not self.stdout:
            sys.stdout = self.stdout  # type: ignore[assignment]
        if sys.stderr is not self.stderr:
            sys.stderr = self.stderr  # type: ignore[assignment]
        if self.capture is not None and self.capture not in self.root_logger.handlers:
            self.root_logger.addHandler(self.capture)
        try:
            if os.getcwd() != self.proc_dir:
                os.chdir(self.proc_dir)
        except OSError:
            os.chdir(self.proc_dir)

    def forked(self) -> None:
        """In a child made by os.fork() in a phase: never talk on the worker's channel."""
        self.sink.channel = None
        self.is_fork_child = True

    def run_job(self, msg: dict[str, Any]) -> None:
        self.reset_process()
        self.sink.drain_output()  # stray output from between jobs is dropped, not kept
        for splitter in (self.out, self.err):
            with splitter.lock:
                splitter.parts, splitter.size, splitter.overflow = [], 0, 0
        self.sink.begin()
        self.sink.post({"t": "ack"})
        t0 = time.time()
        try:
            done = Job(self, msg).execute()
        except BaseException as exc:  # the job's own bookkeeping failed; still answer
            done = {"t": "done", "error": f"The worker failed to run the phase: {exc!r}"}
        self.sink.drain_output()
        if self.fd_out is not None:
            self.fd_out.drain()
            self.fd_err.drain()
            self.fd_out.splitter.finish()
            self.fd_err.splitter.finish()
        self.out.finish()
        self.err.finish()
        if self.is_fork_child:
            os._exit(0)  # a forked copy of the phase returned: it must not answer the engine
        done["t0"] = t0
        done["t1"] = time.time()
        self.sink.end(done)
        upcoming = msg.get("next")
        if upcoming:
            prefetch_module(upcoming)

    def serve(self) -> None:
        self.channel.send({"t": "ready", "pid": os.getpid()})
        while True:
            msg = self.channel.recv()
            if msg is None:
                return
            if msg.get("t") == "job":
                self.run_job(msg)


def main() -> None:
    proc_dir = os.path.abspath(sys.argv[1])
    fd = int(sys.argv[2])
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    try:
        import faulthandler

        global _fault_file
        _fault_file = os.fdopen(os.dup(2), "w")
        faulthandler.enable(file=_fault_file)
    except Exception:
        pass
    worker = Worker(proc_dir, Channel(sock))
    worker.install_capture()
    # This file's folder is first on sys.path (see workerstart); the procedure's directory
    # goes there instead, once the worker's own imports are done (a procedure's `queue.py`
    # must not shadow them), so `import phases.x` and helpers resolve as in a phase.
    sys.path[0] = proc_dir
    real_exit = os._exit

    def flushing_exit(code: int) -> None:
        # os._exit skips every cleanup: send what the phase recorded before it dies.
        with contextlib.suppress(Exception):
            worker.sink.flush()
        real_exit(code)

    os._exit = flushing_exit  # type: ignore[assignment]
    os.register_at_fork(after_in_child=worker.forked)

    def serve() -> None:
        try:
            worker.serve()
        except (BrokenPipeError, ConnectionResetError):
            pass
        real_exit(0)

    def orphan_watch(parent: int) -> None:
        # If the engine dies without closing our channel (SIGKILL, power cut of its
        # terminal...), a phase stuck in a loop would keep us alive: go, with our group.
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                with contextlib.suppress(Exception):
                    os.killpg(os.getpgrp(), 9)
                real_exit(1)

    threading.Thread(target=orphan_watch, args=(os.getppid(),), daemon=True).start()

    # Phases run on this one long-lived thread (not the main thread, as in the
    # reference engine); reusing it keeps a job's round trip short.
    runner = threading.Thread(target=serve, name="phase-runner", daemon=True)
    runner.start()
    runner.join()
    real_exit(0)


if __name__ == "__main__":
    main()

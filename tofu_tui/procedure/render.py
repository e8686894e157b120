"""What `tofu-tui run` prints: NDJSON events (`--json`), or a live view for a technician.

The human view prints each phase as it finishes with its outcome, its measurements with
value, unit and limits, the logs of phases that did not pass, and a final verdict line.
Colour only on a terminal; plain text otherwise (logs, CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections import defaultdict
from typing import Any, TextIO

from tofu_tui.models.events import PhaseLog

_COLORS = {
    "PASS": "32",
    "FAIL": "31",
    "ERROR": "31;1",
    "TIMEOUT": "33",
    "ABORTED": "35",
    "SKIP": "36",
    "UNSET": "2",
}
FAILED_LOG_LINES = 30
PROMPT_NOTICE_S = 0.5  # a prompt still open this long after it was raised is really waiting
_DISPLAY = ("text", "image", "progress")


def _silence(out: TextIO) -> None:
    """Point a stream whose reader went away at /dev/null: the run itself goes on (teardown,
    the upload queue, the exit status), and the interpreter's final flush must not fail again."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


class JsonView:
    """One JSON object a line on stdout; the first line is `run_started` or `error`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self.flush_queued = False
        self.closed = False

    def on_event(self, event: Any) -> None:
        if self.closed:
            return
        line = event.model_dump_json()
        with self.lock:
            try:
                self.out.write(line + "\n")
                if self.loop is None or threading.get_ident() != self.loop_thread or self.loop.is_closed():
                    self.out.flush()
                elif not self.flush_queued:
                    # One write for what one loop turn emits (a phase's end and the next
                    # start): still live for the reader, with a fraction of the system
                    # calls and wakeups.
                    self.flush_queued = True
                    self.loop.call_soon(self._flush)
            except (BrokenPipeError, ValueError):  # the reader went away (`| head`), or stdout was closed
                self._reader_gone()

    def _flush(self) -> None:
        with self.lock:
            self.flush_queued = False
            if self.closed:
                return
            try:
                self.out.flush()
            except (BrokenPipeError, ValueError):
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed = True
        _silence(self.out)
        self.notice("The reader of the event stream went away; the run goes on without it.")

    def attach(self, handle: Any, loop: asyncio.AbstractEventLoop) -> None:
        del handle
        self.loop = loop
        self.loop_thread = threading.get_ident()

    def notice(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def finish(self, result: Any) -> None:
        del result
        self._flush()


def _limits(validators: list[dict[str, Any]]) -> str:
    parts = []
    for v in validators:
        op = v.get("operator")
        if op is None:
            continue
        if v.get("expression"):
            parts.append(str(v["expression"]))
        else:
            parts.append(f"{op} {_fmt(v.get('expected_value'))}")
    return ", ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and "x_axis" in value and "y_axis" in value:
        points = len(value.get("x_axis") or [])
        axes = ", ".join(value.get("y_axis") or {})
        return f"{points} points ({axes})"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class HumanView:
    def __init__(self, out: TextIO, *, color: bool, interactive: bool = False) -> None:
        self.out = out
        self.color = color
        self.interactive = interactive
        self.started = time.monotonic()
        self.closed = False  # the reader of stdout went away
        self.logs: dict[tuple[str, str | None], list[PhaseLog]] = defaultdict(list)
        self.measurements: dict[tuple[str, str | None], dict[str, Any]] = defaultdict(dict)
        self.names: dict[tuple[str, str | None], str] = {}
        self.finals: dict[tuple[str, str | None], str] = {}
        self.slotted = False
        self.handle: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.prompt_lock = threading.Lock()
        self.open_prompts: set[str] = set()

    # --- plumbing ------------------------------------------------------------------
    def attach(self, handle: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.handle = handle
        self.loop = loop

    def paint(self, text: str, outcome: str) -> str:
        code = _COLORS.get(outcome)
        if not self.color or code is None:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.color else text

    def write(self, line: str = "") -> None:
        if self.closed:
            return
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away (`| head`), or stdout was closed
            self.closed = True
            _silence(self.out)
            self.notice("The reader of the run's output went away; the run goes on without it.")

    def notice(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # --- events --------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, event: Any) -> None:
        if event.slot is not None:
            self.slotted = True
        unit = event.unit or {}
        bits = [f"{event.procedure.name}"]
        if event.procedure.version:
            bits.append(event.procedure.version)
        who = unit.get("serial_number")
        line = " ".join(bits)
        if who:
            line += f"  ·  unit {who}"
            if unit.get("part_number"):
                line += f" ({unit['part_number']})"
        if event.slot is not None:
            line += f"  ·  slot {event.slot}"
        self.write(("\x1b[1m" + line + "\x1b[0m") if self.color else line)

    def _key(self, event: Any) -> tuple[str, str | None]:
        return (event.phase_key, event.slot)

    def _on_phase_started(self, event: Any) -> None:
        key = self._key(event)
        self.names[key] = event.phase_name
        if event.attempt:
            where = f"[{event.slot}] " if self.slotted and event.slot else ""
            self.write(self.dim(f"  ↻       {where}{event.phase_name}: retry {event.attempt}"))
        self.logs.pop(key, None)
        self.measurements.pop(key, None)

    def _on_phase_log(self, event: Any) -> None:
        if event.phase_key is None:
            self.notice(f"{event.level}: {event.message}")
            return
        bucket = self.logs[self._key(event)]
        bucket.append(event)
        if len(bucket) > FAILED_LOG_LINES * 4:
            del bucket[: len(bucket) - FAILED_LOG_LINES]

    def _on_measurement(self, event: Any) -> None:
        self.measurements[self._key(event)][event.key] = event

    def _on_phase_finished(self, event: Any) -> None:
        key = self._key(event)
        name = self.names.get(key, event.phase_key)
        outcome = event.outcome
        self.finals[key] = outcome  # the verdict counts each phase's final attempt
        label = self.paint(f"{outcome:<7}", outcome)
        where = f"[{event.slot}] " if self.slotted and event.slot else ""
        retry = f" (retry {event.attempt})" if event.attempt else ""
        duration = _duration(event.duration_ms / 1000)
        self.write(f"  {label} {where}{name}{retry}  {self.dim(duration)}")
        for m in self.measurements.pop(key, {}).values():
            value = _fmt(m.value)
            unit = f" {m.unit}" if m.unit else ""
            limits = _limits(m.validators)
            limits = f"  [{limits}]" if limits else ""
            self.write(f"           {m.name}: {value}{unit}{limits}  {self.paint(m.outcome, m.outcome)}")
        logs = self.logs.pop(key, [])
        if outcome not in ("PASS", "SKIP"):
            if event.error:
                for line in str(event.error).rstrip().splitlines()[-FAILED_LOG_LINES:]:
                    self.write(f"           {self.paint(line, outcome)}")
            shown = [entry for entry in logs if not event.error or entry.message not in event.error]
            for entry in shown[-FAILED_LOG_LINES:]:
                self.write(self.dim(f"           {entry.level:<7} {entry.message}"))

    def _on_ui_request(self, event: Any) -> None:
        self.open_prompts.add(event.request_id)
        if not any(c.get("type") not in _DISPLAY for c in event.components):
            return  # display-only: nothing to answer
        if self.interactive:
            threading.Thread(target=self._ask, args=(event,), daemon=True).start()
        else:
            # A prompt answered at once (--serial, --ui-values) closes within milliseconds:
            # say it waits only if it still does a moment later.
            timer = threading.Timer(PROMPT_NOTICE_S, self._still_waiting, args=(event.request_id, event.phase_key))
            timer.daemon = True
            timer.start()

    def _still_waiting(self, request_id: str, phase_key: str) -> None:
        if request_id in self.open_prompts:
            self.notice(f"Prompt for '{phase_key}' is waiting for an answer.")

    def _on_ui_closed(self, event: Any) -> None:
        self.open_prompts.discard(event.request_id)

    def _on_error(self, event: Any) -> None:
        self.notice(f"error: {event.message}")

    def _on_run_finished(self, event: Any) -> None:
        del event

    # --- a terminal answer for prompts (no --json, stdin is a TTY) ---------------------
    def _ask(self, event: Any) -> None:
        with self.prompt_lock:
            while event.request_id in self.open_prompts:
                values: dict[str, Any] = {}
                name = self.names.get((event.phase_key, event.slot), event.phase_key)
                title = "Identify the unit" if event.phase_key == "identify" else name
                if event.slot is not None:
                    title += f" [{event.slot}]"
                print(f"\n{title}", file=sys.stderr)
                for component in event.components:
                    ctype = component.get("type")
                    if ctype in ("text", "image", "progress"):
                        content = component.get("default_value") or component.get("label") or ""
                        print(f"  {content}", file=sys.stderr)
                        continue
                    label = component.get("label") or component.get("key")
                    options = component.get("options") or []
                    if options:
                        print("    " + ", ".join(str(o.get("value")) for o in options), file=sys.stderr)
                    default = component.get("default_value")
                    hint = f" [{default}]" if default not in (None, "", []) else ""
                    try:
                        answer = input(f"  {label}{hint}: ")
                    except (EOFError, OSError):
                        return
                    if event.request_id not in self.open_prompts:
                        return
                    if answer.strip() == "":
                        continue
                    if ctype in ("multiselect", "checklist"):
                        values[component["key"]] = [a.strip() for a in answer.split(",") if a.strip()]
                    else:
                        values[component["key"]] = answer
                refused = self._answer(event.request_id, values)
                if refused is None:
                    return
                print(f"  Refused: {refused}", file=sys.stderr)

    def _answer(self, request_id: str, values: dict[str, Any]) -> str | None:
        if self.loop is None or self.handle is None:
            return "no run"

        async def call() -> str | None:
            result: str | None = self.handle.answer(request_id, values)
            return result

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return future.result()

    # --- the verdict -----------------------------------------------------------------
    def finish(self, result: Any) -> None:
        if getattr(result, "error", None) and not result.runs:
            return  # nothing ran; the error event already said why
        elapsed = _duration(time.monotonic() - self.started)
        counts: dict[str, int] = defaultdict(int)
        for outcome in self.finals.values():
            counts[outcome] += 1
        total = len(self.finals)
        parts = [f"{total} phase{'s' if total != 1 else ''}"]
        for outcome, word in (
            ("PASS", "passed"),
            ("FAIL", "failed"),
            ("ERROR", "errored"),
            ("TIMEOUT", "timed out"),
            ("SKIP", "skipped"),
            ("ABORTED", "aborted"),
        ):
            if counts.get(outcome):
                parts.append(f"{counts[outcome]} {word}")
        verdict = result.outcome
        line = f"{verdict}  " + ", ".join(parts) + f"  ·  {elapsed}"
        if result.runs and len(result.runs) == 1:
            line += f"  ·  {result.runs[0].serial_number}"
        self.write("")
        if len(result.runs) > 1:
            for run in result.runs:
                slot = f"{run.slot_name or run.slot_key}: " if run.slot_key else ""
                self.write(f"  {self.paint(f'{run.outcome:<7}', run.outcome)} {slot}{run.serial_number}")
        self.write(self.paint(line, verdict) if self.color else line)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"

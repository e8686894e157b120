"""The console's picture of the live run, built from events (no Textual here).

Events are applied as they arrive; the widgets redraw from this state on their own
tick, so a flood of events costs one redraw per tick rather than one per event.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from tofu_tui.models.events import (
    Event,
    MeasurementEvent,
    PhaseFinished,
    PhaseLog,
    PhaseStarted,
    RunFinished,
    RunStarted,
    UiClosed,
    UiRequest,
    UiUpdate,
)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}


@dataclass
class MeasurementView:
    key: str
    name: str
    value: Any
    unit: str | None
    outcome: str
    validators: list[dict[str, Any]]

    def limits(self) -> str:
        return format_limits(self.validators)


@dataclass
class PhaseView:
    key: str
    name: str
    slot: str | None
    attempt: int = 0
    outcome: str | None = None  # None while running
    duration_ms: float | None = None
    error: str | None = None
    measurements: dict[str, MeasurementView] = field(default_factory=dict)


@dataclass
class LogLine:
    level: str
    text: str
    rank: int
    seq: int


def _seq(line: LogLine) -> int:
    return line.seq


@dataclass
class PromptView:
    request: UiRequest
    # Latest `ui_update` values by component key, applied over the defaults.
    updates: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunView:
    execution_id: str
    procedure: str
    version: str
    unit: dict[str, Any]
    started_ts: str
    phases: dict[tuple[str | None, str], PhaseView] = field(default_factory=dict)
    outcome: str | None = None
    finished_ts: str | None = None

    @property
    def running(self) -> bool:
        return self.outcome is None


class LogBuffer:
    """Bounded scrollback with a level filter.

    `lines` keeps the newest `capacity` lines (plus a slack of a tenth, so trimming
    is amortised rather than per line); `visible` holds the ones at or above the
    filter level, in order, for random access by the view. Filtering rescans only
    when the filter itself changes.
    """

    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self._slack = max(capacity // 10, 1)
        self.lines: list[LogLine] = []
        self.visible: list[LogLine] = []
        self.min_rank = 0
        self.total = 0  # lines ever appended
        self.version = 0  # bumps on every change; the view redraws when it moves

    def append(self, level: str, text: str) -> None:
        rank = LEVEL_RANK.get(level, 1)
        line = LogLine(level, text, rank, self.total)
        self.total += 1
        self.lines.append(line)
        if rank >= self.min_rank:
            self.visible.append(line)
        if len(self.lines) > self.capacity + self._slack:
            self.lines = self.lines[-self.capacity :]
            first = self.lines[0].seq
            drop = bisect_left(self.visible, first, key=_seq)
            if drop:
                self.visible = self.visible[drop:]
        self.version += 1

    def set_min_level(self, level: str) -> None:
        self.min_rank = LEVEL_RANK[level]
        self.visible = [line for line in self.lines if line.rank >= self.min_rank]
        self.version += 1

    @property
    def min_level(self) -> str:
        return LEVELS[self.min_rank]

    def clear(self) -> None:
        self.lines = []
        self.visible = []
        self.version += 1


class ConsoleState:
    """Everything the live panels show that comes from events."""

    def __init__(self, log_capacity: int = 5000) -> None:
        self.run: RunView | None = None
        self.log = LogBuffer(log_capacity)
        self.prompts: dict[str, PromptView] = {}  # open prompts by request_id
        self.version = 0  # bumps when the run view (not the log) changes

    def apply(self, event: Event) -> None:
        if isinstance(event, PhaseLog):
            # The hot path: a flood of log lines must stay cheap.
            prefix = f"[{event.phase_key}] " if event.phase_key else ""
            self.log.append(event.level, f"{event.ts[11:23]} {event.level:<8} {prefix}{event.message}")
            return
        if isinstance(event, RunStarted):
            self.run = RunView(
                execution_id=event.execution_id,
                procedure=event.procedure.name,
                version=event.procedure.version,
                unit=dict(event.unit),
                started_ts=event.ts,
            )
            self.prompts.clear()
            self.log.clear()
        elif isinstance(event, PhaseStarted):
            run = self._run_for(event.execution_id)
            if run is not None:
                phase = _phase_view(run, event.slot, event.phase_key, event.phase_name)
                phase.attempt = event.attempt
                phase.outcome = None
                phase.duration_ms = None
                phase.error = None
        elif isinstance(event, MeasurementEvent):
            run = self._run_for(event.execution_id)
            if run is not None:
                phase = _phase_view(run, event.slot, event.phase_key, event.phase_key)
                phase.measurements[event.key] = MeasurementView(
                    event.key, event.name, event.value, event.unit, event.outcome, event.validators
                )
        elif isinstance(event, PhaseFinished):
            run = self._run_for(event.execution_id)
            if run is not None:
                phase = _phase_view(run, event.slot, event.phase_key, event.phase_key)
                phase.attempt = event.attempt
                phase.outcome = event.outcome
                phase.duration_ms = event.duration_ms
                phase.error = event.error
                if event.error:
                    self.log.append("ERROR", f"{event.ts[11:23]} ERROR    [{event.phase_key}] {event.error.strip().splitlines()[-1]}")
        elif isinstance(event, RunFinished):
            run = self._run_for(event.execution_id)
            if run is not None:
                run.outcome = event.outcome
                run.finished_ts = event.ts
            self.prompts.clear()
        elif isinstance(event, UiRequest):
            self.prompts[event.request_id] = PromptView(event)
        elif isinstance(event, UiUpdate):
            for prompt in self.prompts.values():
                if prompt.request.phase_key == event.phase_key and prompt.request.slot == event.slot:
                    prompt.updates[event.key] = event.value
        elif isinstance(event, UiClosed):
            self.prompts.pop(event.request_id, None)
        else:
            return
        self.version += 1

    def _run_for(self, execution_id: str) -> RunView | None:
        run = self.run
        if run is None or (execution_id and run.execution_id and run.execution_id != execution_id):
            return None
        return run


_OPERATOR_TEXT = {
    "==": "=",
    "!=": "≠",
    ">=": "≥",
    "<=": "≤",
    ">": ">",
    "<": "<",
}


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return f"[{len(value)} values]"
    if isinstance(value, dict) and "x_axis" in value and "y_axis" in value:
        # A multi-dimensional measurement: its shape, not its data (which would widen the
        # value column until every other value is pushed out of sight).
        points = len(value.get("x_axis") or [])
        axes = ", ".join(str(axis) for axis in value.get("y_axis") or {})
        return f"{points} points ({axes})" if axes else f"{points} points"
    text = str(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


VALUE_WIDTH = 20  # a long string value is cut here in the run table (80 columns keep the limits)


def format_limits(validators: list[dict[str, Any]]) -> str:
    """`≥ 1.9, ≤ 2.1`: the validators an operator reads as limits."""
    parts = []
    for validator in validators:
        operator = validator.get("operator")
        expected = validator.get("expected_value")
        if operator is None:
            expression = validator.get("expression")
            if expression:
                parts.append(str(expression))
            continue
        if operator == "range" and isinstance(expected, list | tuple) and len(expected) == 2:
            parts.append(f"{format_value(expected[0])}…{format_value(expected[1])}")
            continue
        symbol = _OPERATOR_TEXT.get(operator, operator)
        if isinstance(expected, list):
            shown = ", ".join(format_value(item) for item in expected[:6])
            parts.append(f"{symbol} [{shown}{', …' if len(expected) > 6 else ''}]")
        else:
            parts.append(f"{symbol} {format_value(expected)}")
    return ", ".join(parts)


def format_duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _phase_view(run: RunView, slot: str | None, key: str, name: str) -> PhaseView:
    """The run's view of a phase attempt, created on its first event (a measurement or a
    finish can arrive for a phase whose start a late-attaching console never saw)."""
    phase = run.phases.get((slot, key))
    if phase is None:
        phase = PhaseView(key, name, slot)
        run.phases[(slot, key)] = phase
    return phase

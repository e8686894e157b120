"""The live run: the unit, the phase table with measurements, and the log."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from tofu_tui.tui.logview import LogView
from tofu_tui.tui.state import ConsoleState, RunView, format_duration, format_limits, format_value
from tofu_tui.tui.textline import TextLine

OUTCOME_STYLES = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "ERROR": "bold bright_white on red",
    "TIMEOUT": "bold dark_orange",
    "ABORTED": "bold magenta",
    "SKIP": "bright_black",
    "UNSET": "yellow",
    "LOST": "bold red",
    None: "bold cyan",
}


BADGE_STYLES = {
    "RUNNING": "bold black on cyan",
    "PASS": "bold black on green",
    "FAIL": "bold bright_white on red",
    "ERROR": "bold bright_white on red",
    "TIMEOUT": "bold black on dark_orange",
    "ABORTED": "bold bright_white on magenta",
    "LOST": "bold bright_white on red",
}


def outcome_text(outcome: str | None, running: str = "RUNNING") -> Text:
    return Text(outcome or running, style=OUTCOME_STYLES.get(outcome, ""))


def parse_ts(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def unit_line(run: RunView, now: datetime) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    badge = run.outcome or "RUNNING"
    text.append(f" {badge} ", style=BADGE_STYLES.get(badge, "reverse"))
    text.append(f"  {run.procedure}", style="bold")
    if run.version:
        text.append(f" {run.version}", style="bright_black")
    unit = run.unit
    serial = unit.get("serial_number")
    if serial:
        text.append("  SN ", style="bright_black")
        text.append(str(serial), style="bold")
    if unit.get("part_number"):
        text.append("  PN ", style="bright_black")
        text.append(str(unit["part_number"]))
    if unit.get("revision_number"):
        text.append(f" rev {unit['revision_number']}", style="bright_black")
    started = parse_ts(run.started_ts)
    ended = parse_ts(run.finished_ts) if run.finished_ts else now
    if started is not None and ended is not None:
        text.append(f"  {format_duration((ended - started).total_seconds() * 1000)}", style="bright_black")
    return text


class PhaseTable(DataTable[Text | str]):
    DEFAULT_CSS = """
    PhaseTable { height: auto; max-height: 50%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_cursor=False)

    def on_mount(self) -> None:
        self.add_column("Phase", key="phase")
        self.add_column("Outcome", key="outcome")
        self.add_column("Time", key="time")
        self.add_column("Value", key="value")
        self.add_column("Limits", key="limits")

    def show(self, run: RunView | None, waiting: set[tuple[str | None, str]] | None = None) -> None:
        """`waiting`: (slot, phase) pairs with a prompt open for the operator."""
        self.clear()
        if run is None:
            return
        waiting = waiting or set()
        slots = len({slot for slot, _ in run.phases}) > 1
        for phase in run.phases.values():
            name = phase.name if not slots or phase.slot is None else f"{phase.slot}/{phase.name}"
            if phase.attempt:
                name += f" (retry {phase.attempt})"
            self.add_row(
                Text(name, style="bold"),
                Text("answer (a)", style="bold yellow")
                if phase.outcome is None and (phase.slot, phase.key) in waiting
                else outcome_text(phase.outcome, "running" if run.running else "—"),
                format_duration(phase.duration_ms),
                "",
                Text(phase.error.strip().splitlines()[-1], style="red") if phase.error else "",
            )
            for measurement in phase.measurements.values():
                value = format_value(measurement.value)
                if measurement.unit:
                    value += f" {measurement.unit}"
                style = OUTCOME_STYLES.get(measurement.outcome, "")
                self.add_row(
                    Text(f"  {measurement.name}"),
                    Text(measurement.outcome, style=style),
                    "",
                    Text(value, style=style, justify="right"),
                    format_limits(measurement.validators),
                )
        if self.row_count:
            self.scroll_end(animate=False, immediate=True)


class RunPanel(Vertical):
    """Idle: a hint how to start. Running or finished: unit, phases, log."""

    DEFAULT_CSS = """
    RunPanel { height: 1fr; }
    RunPanel > #run-title { height: 1; }
    RunPanel > #log-title { height: 1; color: $text-muted; }
    """

    def __init__(self, state: ConsoleState, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.state = state
        self._seen = -1

    def compose(self) -> ComposeResult:
        yield TextLine(id="run-title")
        yield PhaseTable(id="phases")
        yield TextLine(id="log-title")
        yield LogView(self.state.log, id="log")

    def sync(self, now: datetime, *, force: bool = False) -> None:
        run = self.state.run
        title = self.query_one("#run-title", TextLine)
        if run is None:
            title.set(Text("No run yet. Select a procedure and press r to start one.", style="bright_black"))
        else:
            title.set(unit_line(run, now))
        if force or self.state.version != self._seen:
            self._seen = self.state.version
            phases = self.query_one(PhaseTable)
            phases.display = run is not None
            phases.show(run, {(p.request.slot, p.request.phase_key) for p in self.state.prompts.values()})
        self.query_one(LogView).sync()
        self._log_title()

    def on_log_view_follow_changed(self, event: LogView.FollowChanged) -> None:
        self._log_title()

    def _log_title(self) -> None:
        log = self.query_one(LogView)
        buffer = self.state.log
        hint = Text(no_wrap=True, overflow="ellipsis")
        hint.append(f"Log ≥ {buffer.min_level}", style="bold")
        hint.append(f"  {len(buffer.visible)} shown", style="bright_black")
        if buffer.total > len(buffer.lines):
            hint.append(f" · {buffer.total - len(buffer.lines)} older dropped", style="bright_black")
        if not log.follow:
            hint.append("  paused (End follows)", style="yellow")
        self.query_one("#log-title", TextLine).set(hint)

"""Station panels drawn from a `StationStatus` snapshot: header, procedures,
deployment, upload queue."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable, Static

from tofu_tui.models.status import DeploymentInfo, LinkedProcedure, QueueEntry, StationStatus
from tofu_tui.tui.backend import BackendMode
from tofu_tui.tui.textline import TextLine


def span(seconds: float) -> str:
    """A short human duration: 42s, 5m, 3h 12m, 2d 4h."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return f"{span((now - when).total_seconds())} ago"


def short_sha(sha: str | None) -> str:
    return (sha or "")[:7]


def first_line(message: str | None) -> str:
    return (message or "").strip().splitlines()[0] if (message or "").strip() else ""


class StationHeader(TextLine):
    """One line: connectivity, station, server, last contact, daemon uptime, mode."""

    DEFAULT_CSS = """
    StationHeader { dock: top; height: 1; background: $panel; }
    """

    def show(
        self,
        status: StationStatus | None,
        now: datetime,
        mode: BackendMode,
        *,
        reachable: bool = True,
        error: str | None = None,
        reconnecting: str | None = None,
    ) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if reconnecting is not None:
            # What is going on first: at 80 columns the station's name may not fit.
            text.append(" ⟳ RECONNECTING ", style="bold black on yellow")
            text.append(f" {reconnecting}")
            if status is not None and (status.station_name or status.station_id):
                text.append(f"  {status.station_name or status.station_id}", style="bold")
            self.set(text)
            return
        if not reachable or status is None:
            text.append(" ✖ NO STATION ", style="bold bright_white on red")
            text.append(f" {error or 'connecting…'}")
            self.set(text)
            return
        if status.connected:
            text.append(" ● ONLINE ", style="bold black on green")
        else:
            text.append(" ✖ OFFLINE ", style="bold bright_white on red")
        text.append(f" {status.station_name or status.station_id or 'unenrolled station'}", style="bold")
        text.append(f"  contact {ago(status.last_contact_at, now)}")
        if status.daemon_started_at is not None:
            text.append(f"  up {span((now - status.daemon_started_at).total_seconds())}")
        text.append("  attached" if mode == "attached" else "  in-process", style="bright_black")
        if status.server_url:
            text.append(f"  {status.server_url}", style="bright_black")
        self.set(text)


class ProcedureTable(DataTable[Text | str]):
    """Linked procedures; the cursor row is the procedure a new run starts."""

    DEFAULT_CSS = """
    ProcedureTable { height: auto; max-height: 12; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._shown: list[LinkedProcedure] = []
        self._now: datetime | None = None

    def on_mount(self) -> None:
        self.add_column("Procedure", key="name")
        self.add_column("Active", key="active")
        self.add_column("Deployed", key="deployed")
        self.add_column("Today", key="today")
        self.add_column("Staged", key="staged")

    def show(self, procedures: list[LinkedProcedure], now: datetime) -> None:
        if procedures == self._shown and now == self._now:
            return
        selected = self.selected_id()
        self._shown = list(procedures)
        self._now = now
        self.clear()
        for procedure in procedures:
            active = procedure.active
            staged = procedure.staged
            if active is not None and active.status == "failed":
                active_cell = Text(f"{short_sha(active.sha)} failed", style="red")
            else:
                active_cell = Text(short_sha(active.sha) if active else "—")
            self.add_row(
                Text(procedure.name, style="bold"),
                active_cell,
                ago(active.deployed_at, now) if active and active.deployed_at else "—",
                Text(str(procedure.runs_today), justify="right"),
                Text(short_sha(staged.sha), style="yellow") if staged else "",
                key=procedure.id,
            )
        if selected is not None:
            for index, procedure in enumerate(procedures):
                if procedure.id == selected:
                    self.move_cursor(row=index, animate=False)

    def selected(self) -> LinkedProcedure | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row]

    def selected_id(self) -> str | None:
        procedure = self.selected()
        return procedure.id if procedure else None


class DeploymentPanel(Static):
    """The selected procedure's active version, and what waits to replace it.

    `compact` (narrow terminals): one line per deployment, the commit message after
    the sha instead of under it.
    """

    DEFAULT_CSS = """
    DeploymentPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.compact = False
        self._last: tuple[LinkedProcedure | None, datetime] | None = None

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            if self._last is not None:
                self.show(*self._last)

    def show(self, procedure: LinkedProcedure | None, now: datetime) -> None:
        self._last = (procedure, now)
        text = Text(no_wrap=True, overflow="ellipsis")
        if procedure is None:
            text.append("No procedure linked to this station.\n", style="bright_black")
            text.append("Link one on the dashboard, then press p to pull.", style="bright_black")
            self.update(text)
            return
        active = procedure.active
        if active is None:
            text.append("no active deployment: press p to pull", style="yellow")
        else:
            _deployment_lines(text, "active", active, now, self.compact)
        if procedure.staged is not None:
            text.append("\n")
            _deployment_lines(text, "staged", procedure.staged, now, self.compact)
            if not self.compact:
                text.append("  (switches in when the run ends)", style="bright_black")
        self.update(text)


def _deployment_lines(text: Text, label: str, deployment: DeploymentInfo, now: datetime, compact: bool) -> None:
    style = {"active": "green", "staged": "yellow", "fetching": "cyan", "failed": "red"}[deployment.status]
    text.append(f"{label:<7}", style=f"bold {style}")
    text.append(short_sha(deployment.sha), style="bold")
    if deployment.branch:
        text.append(f" {deployment.branch}" if compact else f" on {deployment.branch}")
    if deployment.deployed_at is not None and not compact:
        text.append(f" · {ago(deployment.deployed_at, now)}", style="bright_black")
    if deployment.status != label:
        text.append(f" · {deployment.status}", style=style)
    message = first_line(deployment.message)
    if message:
        text.append(f" · {message}" if compact else f"\n       {message}", style="italic")
    if deployment.error:
        text.append(f"\n       {first_line(deployment.error)}", style="red")


def queue_state(entry: QueueEntry, now: datetime) -> Text:
    if entry.state == "backoff":
        if entry.next_attempt_at is not None:
            wait = span((entry.next_attempt_at - now).total_seconds())
            return Text(f"retry in {wait}", style="yellow")
        return Text("backing off", style="yellow")
    if entry.state == "parked":
        return Text("parked", style="bold red")
    if entry.state == "uploading":
        return Text("uploading", style="cyan")
    if entry.state == "done":
        return Text("uploaded", style="green")
    return Text("pending")


def queue_summary(status: StationStatus) -> str:
    counts = status.queue
    parts = [f"{counts.pending} pending"]
    if counts.backoff:
        parts.append(f"{counts.backoff} backing off")
    if counts.parked:
        parts.append(f"{counts.parked} parked")
    return "Upload queue · " + " · ".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def queue_detail(entry: QueueEntry | None, *, compact: bool = False) -> Text:
    """The selected upload in full: what a technician needs to decide retry or drop.
    `compact`: one line, the error right after the number."""
    if entry is None:
        return Text("Nothing waiting: every run reached the server.", style="bright_black")
    text = Text(no_wrap=compact, overflow="ellipsis")
    text.append(f"#{entry.id} ", style="bold")
    if not compact:
        text.append(f"{entry.serial_number or 'no serial'} · {entry.outcome or '—'} · {entry.attempts} tries")
    if entry.last_error:
        if not compact:
            text.append("\n")
        text.append(entry.last_error.strip(), style="red" if entry.state == "parked" else "yellow")
    return text


class QueueTable(DataTable[Text | str]):
    """Runs waiting to reach the server; the cursor row is what retry/drop act on."""

    DEFAULT_CSS = """
    QueueTable { height: auto; max-height: 14; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._shown: list[QueueEntry] = []
        self._now: datetime | None = None

    def on_mount(self) -> None:
        self.add_column("#", key="id")
        self.add_column("Serial", key="serial")
        self.add_column("Result", key="outcome")
        self.add_column("State", key="state")
        self.add_column("Tries", key="attempts")
        self.add_column("Last error", key="error")

    def show(self, entries: list[QueueEntry], now: datetime) -> None:
        entries = [entry for entry in entries if entry.state != "done"]
        if entries == self._shown and now == self._now:
            return
        selected = self.selected_id()
        self._shown = entries
        self._now = now
        self.clear()
        for entry in entries:
            outcome_style = {"PASS": "green", "FAIL": "red"}.get(entry.outcome or "", "yellow")
            self.add_row(
                Text(str(entry.id), justify="right"),
                entry.serial_number or "—",
                Text(entry.outcome or "—", style=outcome_style),
                queue_state(entry, now),
                Text(str(entry.attempts), justify="right"),
                # The table keeps to its panel; the detail line below has the whole error.
                Text(_clip(first_line(entry.last_error), 12), style="red") if entry.last_error else "",
                key=str(entry.id),
            )
        if selected is not None:
            for index, entry in enumerate(entries):
                if entry.id == selected:
                    self.move_cursor(row=index, animate=False)

    def selected(self) -> QueueEntry | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row]

    def selected_id(self) -> int | None:
        entry = self.selected()
        return entry.id if entry else None

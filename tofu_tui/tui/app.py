"""The operator console: a Textual app over a `StationBackend`.

Data flow: backend events -> `ConsoleState` (cheap, per event) -> widgets redraw on a
tick; station snapshots (`status()`) are fetched on start, after station events and
on a slow poll. Every action is a key, a command-palette entry and a help line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, ScreenError, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tofu_tui.models.commands import (
    Command,
    KillCommand,
    PullCommand,
    QueueDropCommand,
    QueueRetryCommand,
    RunCommand,
    StopCommand,
    UiResponseCommand,
)
from tofu_tui.models.events import (
    ConnectivityChanged,
    DeploymentPulled,
    ErrorEvent,
    Event,
    RunFinished,
    RunStarted,
    UiClosed,
    UiRequest,
    UiUpdate,
    UploadBackoff,
    UploadParked,
    UploadQueued,
    UploadSucceeded,
)
from tofu_tui.models.status import StationStatus
from tofu_tui.procedure.prompts import IDENTIFY_KEY
from tofu_tui.tui.backend import StationBackend
from tofu_tui.tui.dialogs import ConfirmScreen, HelpScreen
from tofu_tui.tui.forms import PromptForm, identify_components
from tofu_tui.tui.live_run import RunPanel
from tofu_tui.tui.logview import LogView
from tofu_tui.tui.panels import (
    DeploymentPanel,
    ProcedureTable,
    QueueTable,
    StationHeader,
    queue_detail,
    queue_summary,
)
from tofu_tui.tui.state import LEVELS, ConsoleState
from tofu_tui.tui.uptime import UptimePanel, uptime_summary

Clock = Callable[[], datetime]

NARROW_BELOW = 120
# Event handling runs in slices so keys and redraws get the loop between them.
CONSUME_SLICE_S = 0.004
CONSUME_PAUSE_S = 0.004

# An attached console follows a daemon that restarts (an upgrade, a crash under
# systemd's Restart=): it tries again after 0.25 s, doubling up to 5 s.
RECONNECT_FIRST_S = 0.25
RECONNECT_MAX_S = 5.0
RECONNECT_PROBE_TIMEOUT_S = 5.0
# A run that was in flight when its daemon went away and is not in flight after: its
# end was never seen (kill -9, power loss), so the console says so instead of RUNNING.
LOST = "LOST"

STATION_EVENTS = (DeploymentPulled, UploadQueued, UploadSucceeded, UploadParked, UploadBackoff, ConnectivityChanged)

# Actions that belong to the main screen: disabled while a dialog is open.
MAIN_ACTIONS = frozenset(
    {
        "start_run",
        "stop_run",
        "kill_run",
        "answer",
        "pull",
        "queue_retry",
        "queue_retry_all",
        "queue_drop",
        "cycle_level",
        "toggle_view",
        "help",
        "quit_console",
    }
)


def system_clock() -> datetime:
    return datetime.now(UTC)


class StationConsole(App[None]):
    TITLE = "tofu-tui"

    CSS = """
    #body { height: 1fr; }
    #side { width: 64; height: 1fr; }
    .box { border: round $primary-darken-1; border-title-color: $text; border-title-style: bold; padding: 0 1; }
    #procedures-box { height: auto; max-height: 14; }
    #deployment-box { height: auto; }
    #queue-box { height: 1fr; min-height: 5; }
    #queue-detail { height: auto; max-height: 4; }
    QueueTable { margin-bottom: 1; }
    #run-panel { width: 1fr; }
    #uptime-box { height: auto; }
    Screen.narrow #side { width: 1fr; }
    Screen.narrow.view-run #side { display: none; }
    Screen.narrow.view-run #uptime-box { display: none; }
    Screen.narrow.view-station #run-panel { display: none; }
    Screen.narrow #procedures-box { max-height: 6; }
    Screen.narrow #queue-detail { max-height: 1; }
    Screen.narrow QueueTable { margin-bottom: 0; }
    DataTable { background: $surface; }
    """

    BINDINGS: ClassVar = [
        # Priority: run in key order by the app, so a scan typed right after `r` waits
        # for the identify form instead of going to the procedure table.
        Binding("r", "start_run", "Run", priority=True),
        Binding("x", "stop_run", "Stop"),
        Binding("K", "kill_run", "Kill", show=False),
        Binding("a", "answer", "Answer"),
        Binding("p", "pull", "Pull"),
        Binding("u", "queue_retry", "Retry"),
        Binding("U", "queue_retry_all", "Retry all", show=False),
        Binding("d", "queue_drop", "Drop", show=False),
        Binding("l", "cycle_level", "Log", show=False),
        Binding("v", "toggle_view", "View"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit_console", "Quit"),
    ]

    # Help text for each key, in the order the help screen lists them.
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("r / Enter", "start a run of the selected procedure (identify the unit first)"),
        ("x", "stop the run (asks first; teardown still runs)"),
        ("K", "kill the run (asks first; processes are killed at once)"),
        ("a", "answer the open prompt again after putting it aside"),
        ("p", "pull deployments now"),
        ("u", "retry the selected upload now"),
        ("U", "retry every waiting upload now"),
        ("d", "drop the selected upload from the queue (asks first)"),
        ("l", "cycle the log filter: DEBUG → INFO → WARNING → ERROR → CRITICAL"),
        ("End", "in the log: follow new lines again"),
        ("v", "narrow terminal: switch between station and run views"),
        ("Tab", "move between panels"),
        ("ctrl+p", "command palette: every action by name"),
        ("?", "this help"),
        ("q", "quit (when attached to the daemon, it keeps running)"),
    ]
    FORM_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Enter", "submit (a scanner's Enter submits the identify form)"),
        ("ctrl+s", "submit from any field"),
        ("Tab / shift+Tab", "next / previous field"),
        ("Space", "toggle a switch or a checklist item"),
        ("← →", "move a slider (Home/End: its ends)"),
        ("Esc", "put the prompt aside (a answers it later); cancels identify"),
        ("y / n", "in a confirmation: confirm / cancel"),
    ]

    def __init__(
        self,
        backend: StationBackend,
        *,
        clock: Clock = system_clock,
        status_interval: float = 5.0,
        tick_interval: float = 1 / 10,
        log_capacity: int = 5000,
        freeze_gc: bool = False,
    ) -> None:
        super().__init__()
        self.freeze_gc = freeze_gc
        self.backend = backend
        self.clock = clock
        self.status_interval = status_interval
        self.tick_interval = tick_interval
        self.state = ConsoleState(log_capacity)
        self.status: StationStatus | None = None
        self.status_error: str | None = None
        self.view = "station"
        self.last_unit: dict[str, dict[str, Any]] = {}  # per procedure: what the operator typed last
        self.set_aside: set[str] = set()  # prompts the operator put aside
        self.answered: set[str] = set()  # accepted answers, until the engine closes them
        self._status_pending = False
        self._subscription: asyncio.Task[None] | None = None
        self.reconnecting: str | None = None  # what the header says while the daemon is away

    # --- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StationHeader(id="header")
        with Horizontal(id="body"):
            with Vertical(id="side"):
                with Vertical(id="procedures-box", classes="box"):
                    yield ProcedureTable(id="procedures")
                with Vertical(id="deployment-box", classes="box"):
                    yield DeploymentPanel(id="deployment")
                with Vertical(id="queue-box", classes="box"):
                    yield QueueTable(id="queue")
                    yield Static(id="queue-detail")
            yield RunPanel(self.state, id="run-panel", classes="box")
        with Vertical(id="uptime-box", classes="box"):
            yield UptimePanel(id="uptime")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.main_screen.query_one("#procedures-box").border_title = "Procedures"
        self.main_screen.query_one("#deployment-box").border_title = "Deployment"
        self.main_screen.query_one("#queue-box").border_title = "Upload queue"
        self.main_screen.query_one("#run-panel").border_title = "Live run"
        self.main_screen.query_one("#uptime-box").border_title = "Uptime · 90 days"
        self._apply_layout(self.size.width)
        self.main_screen.query_one(ProcedureTable).focus()
        self._redraw_header()
        self.set_interval(self.tick_interval, self.flush)
        self.set_interval(1.0, self._redraw_header)
        self.set_interval(self.status_interval, self.request_status)
        self.request_status()
        self._subscription = asyncio.create_task(self._consume())
        if self.freeze_gc:
            # The widgets, styles and modules alive after start-up stay for the whole
            # session; freezing them keeps full GC passes during a log flood short
            # (measured: 100-450 ms pauses otherwise on a busy 2-core bench PC).
            self.call_after_refresh(gc.freeze)
        if not self.is_headless:
            # A dropped SSH session sends SIGHUP, systemd and kill send SIGTERM: leave the
            # way `q` does, so unmounting closes the backend (in process, that stops the run
            # in flight: teardown runs, the run is queued ABORTED) instead of dying with it
            # or spinning on a dead tty.
            loop = asyncio.get_running_loop()
            for name in ("SIGHUP", "SIGTERM"):
                with contextlib.suppress(NotImplementedError, AttributeError, ValueError, RuntimeError):
                    loop.add_signal_handler(getattr(signal, name), self.exit)

    async def on_unmount(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
        with contextlib.suppress(Exception):
            await self.backend.close()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_layout(event.size.width)

    def _apply_layout(self, width: int) -> None:
        main = self.screen_stack[0] if self.screen_stack else self.screen
        narrow = width < NARROW_BELOW
        main.set_class(narrow, "narrow")
        with contextlib.suppress(NoMatches):
            # Narrow: the deployment folds to a line each and uptime's figures go
            # into its title, so the queue keeps room for its rows.
            main.query_one(DeploymentPanel).set_compact(narrow)
            main.query_one(UptimePanel).set_summary(not narrow)
            self._title_uptime(narrow)
            self._show_queue_detail()
        main.set_class(self.view == "run", "view-run")
        main.set_class(self.view == "station", "view-station")

    def show_view(self, view: str) -> None:
        self.view = view
        self._apply_layout(self.size.width)
        if view == "run" and self.size.width < NARROW_BELOW:
            self.main_screen.query_one(LogView).focus()
        elif view == "station" and self.size.width < NARROW_BELOW:
            self.main_screen.query_one(ProcedureTable).focus()

    @property
    def main_screen(self) -> Screen[Any]:
        return self.screen_stack[0]

    # --- redraws -----------------------------------------------------------------------

    def flush(self) -> None:
        """Draw what the events since the last tick changed."""
        with contextlib.suppress(NoMatches, IndexError):  # a tick can land while the app unmounts
            self.main_screen.query_one(RunPanel).sync(self.clock())

    def _redraw_header(self) -> None:
        with contextlib.suppress(NoMatches, IndexError):
            self._header().show(
                self.status,
                self.clock(),
                self.backend.mode,
                reachable=self.status_error is None,
                error=self.status_error,
                reconnecting=self.reconnecting,
            )

    def _header(self) -> StationHeader:
        return self.main_screen.query_one(StationHeader)

    def request_status(self) -> None:
        if not self._status_pending:
            self._status_pending = True
            self._fetch_status()

    @work(exclusive=False, group="status")
    async def _fetch_status(self) -> None:
        try:
            status = await self.backend.status()
        except Exception as exc:  # a station hiccup is shown, never fatal to the console
            self.status_error = str(exc) or type(exc).__name__
            self._redraw_header()
            return
        finally:
            self._status_pending = False
        self.status_error = None
        self.show_status(status)

    def show_status(self, status: StationStatus) -> None:
        self.status = status
        now = self.clock()
        self._redraw_header()
        procedures = self.main_screen.query_one(ProcedureTable)
        procedures.show(status.procedures, now)
        self.main_screen.query_one(DeploymentPanel).show(procedures.selected(), now)
        self.main_screen.query_one(QueueTable).show(status.queue_entries, now)
        self._show_queue_detail()
        self.main_screen.query_one("#queue-box").border_title = queue_summary(status)
        self.main_screen.query_one(UptimePanel).set_uptime(status.uptime)
        self._title_uptime(self.size.width < NARROW_BELOW)

    def _title_uptime(self, narrow: bool) -> None:
        box = self.main_screen.query_one("#uptime-box")
        if narrow and self.status is not None:
            title = Text("Uptime ")
            title.append_text(uptime_summary(self.status.uptime))
            box.border_title = title
        else:
            box.border_title = "Uptime · 90 days"

    @on(DataTable.RowHighlighted, "#procedures")
    def _procedure_highlighted(self) -> None:
        # A highlight can still be queued while shutdown removes the widgets (or the
        # screens): nothing to show then, and nothing worth crashing the exit for.
        with contextlib.suppress(NoMatches, IndexError):
            main = self.main_screen
            main.query_one(DeploymentPanel).show(main.query_one(ProcedureTable).selected(), self.clock())

    @on(DataTable.RowHighlighted, "#queue")
    def _show_queue_detail(self) -> None:
        try:  # as above: the queue's highlight can land during shutdown too
            table = self.main_screen.query_one(QueueTable)
            detail = self.main_screen.query_one("#queue-detail", Static)
        except (NoMatches, IndexError):
            return
        entry = table.selected()
        detail.update(queue_detail(entry, compact=self.size.width < NARROW_BELOW))
        table.display = entry is not None

    @on(DataTable.RowSelected, "#procedures")
    async def _procedure_selected(self) -> None:
        await self.action_start_run()

    # --- events --------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Follow the station's events; attached, follow the daemon across restarts."""
        loop = asyncio.get_running_loop()
        delay = RECONNECT_FIRST_S
        while True:
            subscribed_at = loop.time()
            try:
                await self._follow(loop)
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
            else:
                reason = "The station closed the connection."
            if self.backend.mode != "attached":
                # In process, the events end only when the station does.
                self.status_error = f"{reason} Restart tofu-tui."
                self._redraw_header()
                return
            if loop.time() - subscribed_at > RECONNECT_MAX_S:
                delay = RECONNECT_FIRST_S  # it was up a while: a fresh outage
            status, delay = await self._reconnect(delay)
            self._reconnected(status)

    async def _follow(self, loop: asyncio.AbstractEventLoop) -> None:
        slice_end = loop.time() + CONSUME_SLICE_S
        async for event in self.backend.events():
            self.handle_event(event)
            if loop.time() >= slice_end:
                # A flood arrives without pauses. A key press travels through
                # several message queues, each needing a turn of the loop:
                # a real pause (not sleep(0)) lets all of them run.
                await asyncio.sleep(CONSUME_PAUSE_S)
                slice_end = loop.time() + CONSUME_SLICE_S

    async def _reconnect(self, delay: float) -> tuple[StationStatus, float]:
        """Try the daemon with a growing pause until it answers; the header says so."""
        tries = 0
        while True:
            tries += 1
            self.reconnecting = "daemon restarting… reconnecting" + (f" (try {tries})" if tries > 1 else "")
            self._redraw_header()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            try:
                async with asyncio.timeout(RECONNECT_PROBE_TIMEOUT_S):
                    return await self.backend.status(), delay
            except Exception:  # still away: try again later
                continue

    def _reconnected(self, status: StationStatus) -> None:
        """Back on a (maybe new) daemon: drop what only the old one knew. Its
        subscription replays the run in flight and its open prompts."""
        self.reconnecting = None
        self.status_error = None
        run = self.state.run
        if run is not None and run.running and status.run_in_flight != run.execution_id:
            run.outcome = LOST
            self.state.version += 1
            self.notify(
                "The run in progress did not finish: the station daemon stopped during it. "
                "It is not on the dashboard; run the unit again.",
                severity="error",
                timeout=15,
            )
        self.state.prompts.clear()
        self.answered.clear()
        self.set_aside.clear()
        for form in self._open_forms():
            self._close_form(form)  # a replayed prompt opens again
        self.show_status(status)
        self.notify("Reconnected to the station daemon.")

    def handle_event(self, event: Event) -> None:
        self.state.apply(event)
        if isinstance(event, RunStarted):
            self.set_aside.clear()
            self.show_view("run")
        elif isinstance(event, UiRequest):
            self._open_prompt(event.request_id)
        elif isinstance(event, UiUpdate):
            for form in self._open_forms():
                prompt = self.state.prompts.get(form.request_id or "")
                if prompt is not None and (prompt.request.phase_key, prompt.request.slot) == (event.phase_key, event.slot):
                    form.apply_update(event.key, event.value)
        elif isinstance(event, UiClosed):
            for form in self._open_forms():
                if form.request_id == event.request_id:
                    self._close_form(form)
                    if event.reason != "answered":
                        self.notify(f"The prompt closed: {event.reason}.", severity="warning")
            self.set_aside.discard(event.request_id)
            self.answered.discard(event.request_id)
        elif isinstance(event, RunFinished):
            self.notify(
                f"Run finished: {event.outcome}",
                severity="information" if event.outcome == "PASS" else "error",
                timeout=8,
            )
            self.request_status()
        elif isinstance(event, ErrorEvent):
            self.notify(event.message, severity="error", timeout=10)
        if isinstance(event, STATION_EVENTS):
            if isinstance(event, ConnectivityChanged) and self.status is not None:
                self.status = self.status.model_copy(update={"connected": event.connected})
                self._redraw_header()
            if isinstance(event, UploadParked):
                self.notify(f"Upload #{event.queue_id} parked: {event.error}", severity="error", timeout=10)
            self.request_status()

    def _close_form(self, form: PromptForm) -> None:
        # `dismiss` pops the top screen, whichever it is: the palette over the form goes first.
        with contextlib.suppress(ScreenError):
            if form is not self.screen:
                form.pop_until_active()
            form.dismiss(True)

    def _open_forms(self) -> list[PromptForm]:
        return [screen for screen in self.screen_stack if isinstance(screen, PromptForm) and screen.request_id]

    def _open_prompt(self, request_id: str) -> None:
        prompt = self.state.prompts.get(request_id)
        if prompt is None or request_id in self.answered:
            return
        if any(form.request_id == request_id for form in self._open_forms()):
            return
        if self._open_forms():
            return  # one prompt at a time; the next opens when this one closes
        request = prompt.request
        phase = self.state.run.phases.get((request.slot, request.phase_key)) if self.state.run else None
        # The engine asks for what identify still needs (sub-units, metadata) as a prompt.
        title = "Identify unit" if request.phase_key == "identify" else (phase.name if phase else request.phase_key)
        if request.slot:
            title = f"{request.slot} · {title}"

        async def submit(values: dict[str, Any]) -> str | None:
            reason = await self.send_quietly(UiResponseCommand(request_id=request_id, values=values))
            if reason is None:
                self.answered.add(request_id)
            return reason

        def closed(answered: bool | None) -> None:
            if not answered and request_id in self.state.prompts:
                self.set_aside.add(request_id)
                self.notify("Prompt put aside: press a to answer it.", severity="warning")
            self._open_next_prompt()

        form = PromptForm(title, request.components, submit, request_id=request_id, updates=prompt.updates)
        self.push_screen(form, closed)

    def _open_next_prompt(self) -> None:
        for request_id in self.state.prompts:
            if request_id not in self.set_aside and request_id not in self.answered:
                self._open_prompt(request_id)
                return

    # --- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MAIN_ACTIONS and self.screen is not self.main_screen)

    def run_in_flight(self) -> bool:
        if self.state.run is not None:
            return self.state.run.running
        return bool(self.status and self.status.run_in_flight)

    async def send_quietly(self, command: Command) -> str | None:
        """The station's refusal, or a broken connection, as a reason to show."""
        try:
            return await self.backend.send(command)
        except Exception as exc:
            return f"Could not reach the station: {exc or type(exc).__name__}"

    async def send(self, command: Command, done: str | None = None) -> str | None:
        reason = await self.send_quietly(command)
        if reason is not None:
            self.notify(reason, title=f"{command.name} refused", severity="error", timeout=10)
        elif done:
            self.notify(done)
        return reason

    async def action_start_run(self) -> None:
        procedure = self.main_screen.query_one(ProcedureTable).selected()
        if procedure is None:
            self.notify("No procedure is linked to this station: link one on the dashboard, then pull.", severity="warning")
            return
        if self.run_in_flight():
            self.notify("A run is in progress: wait for it to end, or stop it with x.", severity="warning")
            return
        if procedure.active is None or procedure.active.status == "failed":
            self.notify(f"{procedure.name} has no working deployment yet: press p to pull.", severity="warning")
            return

        unit = procedure.unit
        if unit is not None and unit.auto_identify:
            # The procedure names its unit itself (`auto_identify`): nothing to ask, the
            # engine takes the defaults, as `tofu-tui run` does in a terminal.
            if await self.send(RunCommand(procedure_id=procedure.id)) is None:
                serial = unit.serial_number.default_value if unit.serial_number else None
                self.notify(f"{procedure.name}: started for {serial or 'its default unit'} (auto-identify).")
                self.show_view("run")
            return
        last = self.last_unit.setdefault(procedure.id, {})

        async def submit(values: dict[str, Any]) -> str | None:
            identify = {k: v for k, v in values.items() if k.startswith(("sub_unit:", "metadata:"))}
            command = RunCommand(
                procedure_id=procedure.id,
                serial_number=values.get("serial_number"),
                part_number=values.get("part_number"),
                revision_number=values.get("revision_number"),
                batch_number=values.get("batch_number"),
                ui_values={IDENTIFY_KEY: identify} if identify else None,
            )
            reason = await self.send_quietly(command)
            if reason is None:
                # Serials change with every unit; the rest is kept for the next one.
                last.clear()
                last.update({k: v for k, v in values.items() if k != "serial_number" and not k.startswith("sub_unit:")})
                self.show_view("run")
            return reason

        # Awaited: keys typed right after `r` (a scan) reach the form's first field.
        await self.push_screen(
            PromptForm(
                f"Identify unit · {procedure.name}",
                identify_components(unit, last),
                submit,
                submit_label="Start run",
                later_label="Cancel",
            )
        )

    def action_stop_run(self) -> None:
        self._confirm_run_command(
            StopCommand(),
            "Stop the run?",
            "Running phases are asked to stop, teardown still runs, and the run ends ABORTED.",
            "Stop run",
        )

    def action_kill_run(self) -> None:
        self._confirm_run_command(
            KillCommand(),
            "Kill the run?",
            "Phase and plug processes are killed at once; teardown does not run. Use this when stop does not work.",
            "Kill run",
        )

    def _confirm_run_command(self, command: Command, question: str, detail: str, label: str) -> None:
        if not self.run_in_flight():
            self.notify("No run in progress.", severity="warning")
            return

        async def confirmed(yes: bool | None) -> None:
            if yes:
                await self.send(command, f"{command.name} sent.")

        self.push_screen(ConfirmScreen(question, detail, label), confirmed)

    def action_answer(self) -> None:
        if not set(self.state.prompts) - self.answered:
            self.notify("No prompt is waiting for an answer.")
            return
        self.set_aside.clear()
        self._open_next_prompt()

    async def action_pull(self) -> None:
        await self.send(PullCommand(), "Pulling deployments…")

    async def action_queue_retry(self) -> None:
        entry = self.main_screen.query_one(QueueTable).selected()
        if entry is None:
            self.notify("The upload queue is empty.")
            return
        if await self.send(QueueRetryCommand(queue_id=entry.id), f"Retrying upload #{entry.id}.") is None:
            self.request_status()

    async def action_queue_retry_all(self) -> None:
        if await self.send(QueueRetryCommand(queue_id=None), "Retrying every waiting upload.") is None:
            self.request_status()

    def action_queue_drop(self) -> None:
        entry = self.main_screen.query_one(QueueTable).selected()
        if entry is None:
            self.notify("The upload queue is empty.")
            return

        async def confirmed(yes: bool | None) -> None:
            if yes and await self.send(QueueDropCommand(queue_id=entry.id), f"Dropped upload #{entry.id}.") is None:
                self.request_status()

        self.push_screen(
            ConfirmScreen(
                f"Drop upload #{entry.id} ({entry.serial_number or 'no serial'})?",
                "The run is deleted from this station and never reaches the server. "
                "Export it first (tofu-tui queue export) if you may need it.",
                "Drop",
            ),
            confirmed,
        )

    def action_cycle_level(self) -> None:
        self.main_screen.query_one(LogView).cycle_level()
        self.flush()  # the log title names the level

    def set_log_level(self, level: str) -> None:
        self.main_screen.query_one(LogView).set_min_level(level)
        self.flush()

    def action_toggle_view(self) -> None:
        self.show_view("station" if self.view == "run" else "run")

    def action_help(self) -> None:
        self.push_screen(HelpScreen([("Console", self.KEY_HELP), ("Forms and dialogs", self.FORM_HELP)]))

    async def action_quit_console(self) -> None:
        if self.backend.mode == "in-process" and self.run_in_flight():

            async def confirmed(yes: bool | None) -> None:
                if yes:
                    self.exit()

            self.push_screen(
                ConfirmScreen(
                    "Quit and stop the station?",
                    "No daemon runs this station: quitting aborts the run in progress.",
                    "Quit",
                ),
                confirmed,
            )
            return
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("Start run", "Identify a unit and run the selected procedure", self.action_start_run)
        yield SystemCommand("Stop run", "Ask the run in progress to stop (teardown runs)", self.action_stop_run)
        yield SystemCommand("Kill run", "Kill the run's processes at once", self.action_kill_run)
        yield SystemCommand("Answer prompt", "Open the prompt waiting for an answer", self.action_answer)
        yield SystemCommand("Pull deployments", "Sync deployments from the server now", self.action_pull)
        yield SystemCommand("Retry upload", "Upload the selected queued run now", self.action_queue_retry)
        yield SystemCommand("Retry all uploads", "Upload every queued run now", self.action_queue_retry_all)
        yield SystemCommand("Drop upload", "Delete the selected queued run", self.action_queue_drop)
        for level in LEVELS:
            yield SystemCommand(f"Log level {level}", f"Show log lines at {level} and above", lambda level=level: self.set_log_level(level))
        yield SystemCommand("Switch view", "Station or run view (narrow terminals)", self.action_toggle_view)
        yield SystemCommand("Help", "Every key", self.action_help)
        yield SystemCommand(
            "Quit" if self.backend.mode == "in-process" else "Detach",
            "Leave the console" + (" (the daemon keeps running)" if self.backend.mode == "attached" else ""),
            self.action_quit_console,
        )
        yield from super().get_system_commands(screen)

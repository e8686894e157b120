"""Operator flows, driven with the pilot against a scripted station: what the screen
shows, and which commands reached the station."""

from __future__ import annotations

from typing import Any

from tests.tui import scenarios
from tests.tui.conftest import screen_text, settle, shows, toast_says
from tests.tui.scenarios import EXEC
from tests.tui.scripted import ScriptedBackend, fixed_clock, ts
from tofu_tui.models.commands import (
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
    MeasurementEvent,
    PhaseLog,
    PhaseStarted,
    UiClosed,
    UiRequest,
    UiUpdate,
)
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.dialogs import ConfirmScreen, HelpScreen
from tofu_tui.tui.forms import PromptForm

WIDE = (160, 48)


def console(backend: ScriptedBackend, **kwargs: Any) -> StationConsole:
    return StationConsole(backend, clock=fixed_clock, status_interval=3600, **kwargs)


async def test_idle_station_shows_health_procedures_and_deployment() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        text = screen_text(app)
    assert "● ONLINE  Bench 07 · Charger line  contact 4s ago  up 2d 4h  attached" in text
    assert "Charger Board EOL  9c41e0d  3h 12m ago     37  b7e2f90" in text
    assert "active 9c41e0d on main · 3h 12m ago" in text
    assert "Raise output current limit to 2.1 A" in text
    assert "(switches in when the run ends)" in text
    assert "24 h 100%  7 d 100%  90 d 100%" in text


async def test_start_run_identify_form_enter_submits_like_a_scanner() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        assert isinstance(app.screen, PromptForm)
        assert "Identify unit · Charger Board EOL" in screen_text(app)
        # The serial alone and Enter: the part number is still missing.
        await pilot.press(*"CB-1", "enter")
        assert backend.sent == []
        assert "Required." in screen_text(app)
        # The form moved to the field that needs attention.
        await pilot.press(*"CB-100", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, PromptForm)
        assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="CB-1", part_number="CB-100")]
        # The next unit: the part number is kept, a scanned serial and its Enter start it.
        backend.emit(*scenarios.run_failed())
        await settle(pilot, backend)
        await pilot.press("r")
        await pilot.press(*"CB-2", "enter")
        await pilot.pause()
    assert backend.sent[-1] == RunCommand(procedure_id="proc-charger", serial_number="CB-2", part_number="CB-100")


async def test_refused_run_keeps_the_form_open_with_the_reason() -> None:
    backend = ScriptedBackend(
        scenarios.idle_status(), replies={"Run": lambda _: "Charger Board EOL is still being checked out; try again in a moment."}
    )
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("r", *"CB-1", "tab", *"CB-100", "enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptForm)
        assert "still being checked out; try again in a moment." in screen_text(app)


async def test_start_run_while_running_or_without_deployment_says_why() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, PromptForm)
        assert await toast_says(pilot, "A run is in progress")
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("down", "down", "r")
        await pilot.pause()
        assert await toast_says(pilot, "Burn-in 48h has no working deployment yet: press p to pull.")
    assert backend.sent == []


async def test_live_run_shows_phases_measurements_limits_and_log() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_failed())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        text = screen_text(app)
        assert await toast_says(pilot, "Run finished: FAIL")
    assert " FAIL   Charger Board EOL 2.4.0  SN CB-2611-0400  PN CB-100 rev C  33.7 s" in text
    assert "Board Temperature  FAIL             91.3 °C  ≤ 85" in text
    assert "Input Voltage      PASS             12.04 V  ≥ 11.5, ≤ 12.5" in text
    assert "Thermal Soak         FAIL     29.9 s" in text
    assert "ERROR    [thermal] board temperature 91.3 °C above 85 °C" in text


async def test_log_filter_by_level_and_bounded_scrollback() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress())
    app = console(backend, log_capacity=100)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        assert "load step 0.5 A → 2.0 A" in screen_text(app)
        await pilot.press("l")  # DEBUG -> INFO
        await pilot.pause()
        text = screen_text(app)
        assert "Log ≥ INFO" in text
        assert "load step 0.5 A → 2.0 A" not in text
        assert "Enabling 12 V rail" in text
        await pilot.press("l")  # -> WARNING
        await pilot.pause()
        assert "Enabling 12 V rail" not in screen_text(app)
        assert "ripple 48 mV close to the 50 mV limit" in screen_text(app)
        await pilot.press("l", "l", "l")  # ERROR, CRITICAL, back to DEBUG
        backend.emit(
            *[
                PhaseLog(execution_id=EXEC, seq=1000 + n, ts=ts(10), phase_key="thermal", message=f"line {n}")
                for n in range(1000)
            ]
        )
        await settle(pilot, backend)
        text = screen_text(app)
        assert "[thermal] line 999" in text  # follows the newest line
        assert "older dropped" in text
        assert len(app.state.log.lines) <= 110


async def test_every_prompt_component_is_shown() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), [*scenarios.run_in_progress(), scenarios.prompt_request()])
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        assert isinstance(app.screen, PromptForm)
        text = screen_text(app)
    for shown in (
        "Inspect the board under the lamp, then answer.",  # text
        "Reference board, LED side  media/led_reference.png",  # image: alt text and path
        "40%",  # progress
        "Operator badge *",
        "Scope ripple",
        "Fan spins",
        "Notes",
        "LED colour *",
        "Fixture",
        "Scratch",
        "Label present",
        "LED brightness",
    ):
        assert shown in text, shown


async def test_ui_update_changes_the_open_form_and_ui_closed_closes_it() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), [*scenarios.run_in_progress(), scenarios.prompt_request()])
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        backend.emit(
            UiUpdate(execution_id=EXEC, seq=200, ts=ts(6), phase_key="led_check", key="soak", value=75),
            UiUpdate(execution_id=EXEC, seq=201, ts=ts(6), phase_key="led_check", key="intro", value="Now hold the button."),
            UiUpdate(execution_id=EXEC, seq=202, ts=ts(6), phase_key="led_check", key="operator", value="B-117"),
        )
        await settle(pilot, backend)
        text = screen_text(app)
        assert "75%" in text
        assert "Now hold the button." in text
        assert "B-117" in text
        backend.emit(UiClosed(execution_id=EXEC, seq=203, ts=ts(7), request_id="req-1", phase_key="led_check", reason="timed out"))
        await settle(pilot, backend)
        assert not isinstance(app.screen, PromptForm)
        assert await toast_says(pilot, "The prompt closed: timed out.")


async def test_refused_answer_is_shown_under_the_field_it_names() -> None:
    components = [{"type": "text_input", "key": "badge", "label": "Badge", "required": True, "pattern": "^B-"}]
    backend = ScriptedBackend(
        scenarios.idle_status(),
        [*scenarios.run_in_progress(), scenarios.prompt_request(components)],
        replies={"UiResponse": lambda _: "badge: Badge: does not match ^B-; see the badge list"},
    )
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press(*"117", "enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptForm)
        text = screen_text(app)
    assert "badge: Badge: does not match ^B-; see the badge list" in text  # the station's words
    under_field = [line for line in text.splitlines() if "does not match ^B-; see the badge list" in line and "Badge:" not in line]
    assert under_field  # and, without the key and label, under the field it names
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"badge": "117"})]


async def test_prompt_put_aside_comes_back_with_a() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.led_prompt())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        assert isinstance(app.screen, PromptForm)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PromptForm)
        assert await toast_says(pilot, "Prompt put aside: press a to answer it.")
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, PromptForm)
        # The required radio has its first option chosen; the number is optional.
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"led": "green"})]


async def test_stop_and_kill_ask_first_and_a_double_press_does_nothing() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("x", "x", "enter")
        await pilot.pause()
        assert backend.sent == []
        assert not isinstance(app.screen, ConfirmScreen)  # Enter on "Cancel"
        await pilot.press("x")
        assert "Stop the run?" in screen_text(app)
        await pilot.press("y")
        await pilot.pause()
        assert backend.sent == [StopCommand()]
        await pilot.press("K")
        assert "Kill the run?" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert backend.sent == [StopCommand()]
        await pilot.press("K", "y")
        await pilot.pause()
    assert backend.sent == [StopCommand(), KillCommand()]


async def test_stop_without_a_run_says_so() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert await toast_says(pilot, "No run in progress.")
    assert backend.sent == []


async def test_queue_backlog_retry_and_drop() -> None:
    backend = ScriptedBackend(scenarios.offline_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        text = screen_text(app)
        assert "✖ OFFLINE" in text
        assert "contact 52m ago" in text
        assert "Upload queue · 2 pending · 1 backing off · 1 parked" in text
        assert "41  CB-2611-0391  PASS    parked           3  422 Unproce…" in text
        assert "#41 CB-2611-0391 · PASS · 3 tries" in text  # the selected upload in full
        assert "procedure_version '2.4.0' unknown to the" in text
        assert "retry in 1m" in text
        app.query_one("#queue").focus()
        await pilot.press("down", "u")
        await pilot.pause()
        await pilot.press("U")
        await pilot.pause()
        await pilot.press("up", "d")
        assert "Drop upload #41 (CB-2611-0391)?" in screen_text(app)
        await pilot.press("y")
        await pilot.pause()
    assert backend.sent == [QueueRetryCommand(queue_id=42), QueueRetryCommand(queue_id=None), QueueDropCommand(queue_id=41)]


async def test_pull_now_and_refusals_are_shown() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), replies={"Pull": lambda _: "The server is unreachable; deployments will sync when it is back."})
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("p")
        await pilot.pause()
        assert await toast_says(pilot, "The server is unreachable")
    assert backend.sent == [PullCommand()]


async def test_connectivity_event_updates_the_header() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        backend.set_status(scenarios.idle_status(connected=False))
        backend.emit(ConnectivityChanged(connected=False, detail="timeout"))
        await settle(pilot, backend)
        await settle(pilot, backend)
        assert "✖ OFFLINE" in screen_text(app)


async def test_detach_leaves_the_daemon_alone() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress(), mode="attached")
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("q")
        await pilot.pause()
    assert backend.closed
    assert backend.sent == []  # no Stop, no Exit: the run goes on in the daemon


async def test_in_process_quit_during_a_run_asks_first() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress(), mode="in-process")
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("q")
        assert "Quit and stop the station?" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
    assert backend.closed


async def test_station_going_away_or_unreachable_is_shown() -> None:
    # In process, the events end only with the station (attached: see test_reconnect).
    backend = ScriptedBackend(scenarios.idle_status(), mode="in-process")
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        backend.hang_up()
        await settle(pilot, backend)
        assert "The station closed the connection. Restart tofu-tui." in screen_text(app)
    backend = ScriptedBackend(scenarios.idle_status())
    backend.unreachable = "The station daemon does not answer on its control socket."
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        assert "✖ NO STATION  The station daemon does not answer" in screen_text(app)


async def test_help_lists_every_key_and_the_palette_every_action() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        titles = {command.title for command in app.get_system_commands(app.screen)}
    documented = {key for key, _ in StationConsole.KEY_HELP}
    for binding in StationConsole.BINDINGS:
        key = binding.key_display or binding.key
        assert any(key in entry.split(" / ") for entry in documented), key
    for _key, description in StationConsole.KEY_HELP:
        assert description in text, description
    for title in ("Start run", "Stop run", "Kill run", "Answer prompt", "Pull deployments", "Retry upload",
                  "Retry all uploads", "Drop upload", "Log level WARNING", "Switch view", "Help", "Detach"):
        assert title in titles


async def test_narrow_terminal_switches_between_station_and_run() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot, backend)
        assert "Procedures" in screen_text(app)
        assert "Live run" not in screen_text(app)
        backend.emit(*scenarios.run_in_progress())
        await settle(pilot, backend)
        text = screen_text(app)
        assert "Live run" in text
        assert "Procedures" not in text
        await pilot.press("v")
        assert await shows(pilot, "Procedures")
        await pilot.resize_terminal(160, 48)
        assert await shows(pilot, "Live run")
        assert "Procedures" in screen_text(app)


async def test_command_palette_runs_an_action_by_name() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("ctrl+p")
        await pilot.press(*"pull deploy")
        assert await shows(pilot, "Sync deployments from the server now")
        await pilot.press("enter")
        for _ in range(20):
            if backend.sent:
                break
            await pilot.pause()
    assert backend.sent == [PullCommand()]


async def test_slots_are_told_apart_in_the_phase_table_and_prompts() -> None:
    events = [
        scenarios.run_started(),
        PhaseStarted(execution_id=EXEC, seq=2, ts=ts(1), phase_key="led_check", phase_name="LED Check", slot="left"),
        PhaseStarted(execution_id=EXEC, seq=3, ts=ts(1), phase_key="led_check", phase_name="LED Check", slot="right"),
        UiRequest(
            execution_id=EXEC, seq=4, ts=ts(2), request_id="req-right", phase_key="led_check", slot="right",
            components=[{"type": "text_input", "key": "note", "label": "Note"}],
        ),
        UiUpdate(execution_id=EXEC, seq=5, ts=ts(3), phase_key="led_check", key="note", value="from left", slot="left"),
        UiUpdate(execution_id=EXEC, seq=6, ts=ts(3), phase_key="led_check", key="note", value="from right", slot="right"),
    ]
    backend = ScriptedBackend(scenarios.idle_status(), events)
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        text = screen_text(app)
    assert "right · LED Check" in text  # the prompt names its slot
    assert "from right" in text
    assert "from left" not in text
    assert "left/LED Check" in text  # behind the form, the phase rows name their slot


async def test_scrolling_up_pauses_the_log_and_end_follows_again() -> None:
    def lines(start: int, count: int) -> list[PhaseLog]:
        return [
            PhaseLog(execution_id=EXEC, seq=1000 + n, ts=ts(10), phase_key="thermal", message=f"line {n}")
            for n in range(start, start + count)
        ]

    backend = ScriptedBackend(scenarios.idle_status(), [*scenarios.run_in_progress(), *lines(0, 300)])
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        assert "[thermal] line 299" in screen_text(app)
        app.query_one("#log").focus()
        await pilot.press("pageup")
        assert await shows(pilot, "paused (End follows)")
        backend.emit(*lines(300, 50))
        await settle(pilot, backend)
        text = screen_text(app)
        assert "[thermal] line 349" not in text  # the operator keeps reading where they were
        assert "paused (End follows)" in text
        await pilot.press("end")
        await settle(pilot, backend)
        assert await shows(pilot, "[thermal] line 349")
        assert "paused" not in screen_text(app)


async def test_a_broken_connection_is_shown_not_fatal() -> None:
    def broken(_: object) -> str:
        raise ConnectionResetError("connection reset by peer")

    backend = ScriptedBackend(scenarios.idle_status(), replies={"Pull": broken})
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("p")
        assert await toast_says(pilot, "Could not reach the station: connection reset by peer")
        assert app.is_running


async def test_a_multi_dimensional_or_long_value_never_pushes_the_others_out_of_sight() -> None:
    """A sweep's x/y data and a long string are summarised: the scalar values and their
    limits stay on screen beside them, at 80×24 too."""
    events = [
        *scenarios.run_in_progress(),
        MeasurementEvent(
            execution_id=EXEC, seq=100, ts=ts(3.5), phase_key="thermal", key="load_regulation", name="Load Regulation",
            value={"x_axis": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "y_axis": {"output": [5.0, 4.99, 4.98, 4.98, 4.97, 4.96]}},
            unit="V", outcome="PASS", validators=[],
        ),
        MeasurementEvent(
            execution_id=EXEC, seq=101, ts=ts(3.6), phase_key="thermal", key="banner", name="Banner",
            value="x" * 300, outcome="PASS", validators=[],
        ),
    ]
    for size in (WIDE, (80, 24)):
        backend = ScriptedBackend(scenarios.idle_status(), events)
        app = console(backend)
        async with app.run_test(size=size) as pilot:
            await settle(pilot, backend)
            text = screen_text(app)
        assert "12.04 V" in text and "≥ 11.5, ≤ 12.5" in text, text
        assert "6 points (output) V" in text, text
        assert "x" * 400 not in text

"""The console's event state and formatting, without a terminal."""

from __future__ import annotations

from tests.tui import scenarios
from tofu_tui.models.events import PhaseLog, RunStarted, UiClosed, UiUpdate
from tofu_tui.tui.forms import field_messages
from tofu_tui.tui.state import ConsoleState, LogBuffer, format_duration, format_limits
from tofu_tui.tui.uptime import day_bar, day_style, render_uptime


def test_scrollback_stays_bounded_and_keeps_the_newest_lines() -> None:
    buffer = LogBuffer(capacity=100)
    for n in range(10_000):
        buffer.append("DEBUG" if n % 2 else "WARNING", f"line {n}")
    assert len(buffer.lines) <= 110
    assert buffer.lines[-1].text == "line 9999"
    assert buffer.total == 10_000
    buffer.set_min_level("WARNING")
    assert [line.text for line in buffer.visible][-2:] == ["line 9996", "line 9998"]
    assert all(line.level == "WARNING" for line in buffer.visible)
    # Filtered lines evict with the scrollback they belong to.
    for n in range(10_000, 10_300):
        buffer.append("WARNING", f"line {n}")
    assert buffer.visible[0].seq >= buffer.lines[0].seq
    assert len(buffer.visible) <= len(buffer.lines)


def test_events_build_the_run_view() -> None:
    state = ConsoleState()
    for event in scenarios.run_failed():
        state.apply(event)
    run = state.run
    assert run is not None and run.outcome == "FAIL"
    thermal = run.phases[(None, "thermal")]
    assert (thermal.outcome, thermal.duration_ms) == ("FAIL", 29950)
    assert thermal.measurements["board_temperature"].limits() == "≤ 85"
    assert [line.text[13:] for line in state.log.lines][-1] == "ERROR    [thermal] board temperature 91.3 °C above 85 °C"


def test_a_new_run_starts_clean_and_events_of_another_run_are_ignored() -> None:
    state = ConsoleState()
    for event in scenarios.led_prompt():
        state.apply(event)
    assert "req-1" in state.prompts
    state.apply(UiUpdate(execution_id=scenarios.EXEC, phase_key="led_check", key="led", value="red"))
    assert state.prompts["req-1"].updates == {"led": "red"}
    state.apply(UiClosed(execution_id=scenarios.EXEC, request_id="req-1", phase_key="led_check"))
    assert state.prompts == {}
    state.apply(RunStarted(execution_id="other", procedure=scenarios.run_started().procedure))
    assert state.run is not None and state.run.phases == {} and len(state.log.lines) == 0
    state.apply(PhaseLog(execution_id="other", message="hello"))
    assert len(state.log.lines) == 1


def test_limits_and_durations_read_like_an_operator_expects() -> None:
    assert format_limits([{"operator": ">=", "expected_value": 1.9}, {"operator": "<=", "expected_value": 2.1}]) == "≥ 1.9, ≤ 2.1"
    assert format_limits([{"operator": "==", "expected_value": "green"}]) == "= green"
    assert format_limits([{"operator": "in", "expected_value": ["a", "b"]}]) == "in [a, b]"
    assert format_limits([{"operator": "matches", "expected_value": "^SN"}]) == "matches ^SN"
    assert format_limits([{"expression": "x < limit"}]) == "x < limit"
    assert format_duration(950) == "950 ms"
    assert format_duration(12_340) == "12.3 s"
    assert format_duration(125_000) == "2m05s"


def test_uptime_keeps_every_outage_visible() -> None:
    # 20 minutes down in a day is 98.6 %: its own colour, never merged into a week.
    assert day_bar(1.0) == day_bar(0.0) == "█"
    assert day_bar(None) == "·"
    assert day_style(1.0) == "green"
    assert day_style(0.9986) == "gold1"
    assert day_style(0.986) == "dark_orange"
    assert day_style(0.42) == "red"
    assert day_style(None) == "bright_black"
    uptime = scenarios.outage_uptime()
    wide = render_uptime(uptime, 150).plain.splitlines()
    narrow = render_uptime(uptime, 76).plain.splitlines()
    assert len(wide) == 2 and len(narrow) == 3  # 90 bars wrap rather than merge
    bars = "".join(line[7:52] for line in narrow[1:])
    assert len(bars) == 90
    assert "7 days with downtime" in wide[0]


def test_a_refusal_is_split_per_field() -> None:
    reason = "led: LED colour: an answer is required; note: Note: unknown field; this prompt has led, note"
    assert field_messages(reason, ["led", "note", "x"]) == {
        "led": "LED colour: an answer is required",
        "note": "Note: unknown field; this prompt has led, note",
    }
    assert field_messages("the run has ended", ["led"]) == {}

"""procedure-format §2.5/§8/§9 prompt rules through the real CLI that other tests leave
open: `requires_input: false` cannot stop an input from waiting, ui.json entries that
do or do not cover the required inputs, the identify timeout, and `started_at` after
identify."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from tests.procedure.runhelp import UNIT, check_stream, of_type, payload, run_json
from tests.procedure.test_run_prompts import Driver

PROMPTS_YAML = (
    "name: Prompts\n"
    + UNIT
    + """execution: {workers: 1, on_first_failure: continue}
main:
  - name: Forced Wait
    ui: {requires_input: false, components: [{type: switch, key: ok, bind: measurements.ok}]}
  - name: Optional Only
    ui:
      components:
        - {type: text_input, key: note, default_value: fine, bind: measurements.note}
        - {type: checklist, key: steps, default_value: [a, b], bind: measurements.steps,
           options: [{value: a, label: A}, {value: b, label: B}]}
  - name: Needs Two
    ui:
      components:
        - {type: text_input, key: first, required: true, bind: measurements.first}
        - {type: text_input, key: second, required: true, bind: measurements.second}
"""
)


def test_inputs_always_wait_and_ui_values_must_cover_every_required_input(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(PROMPTS_YAML)
    values = tmp_path / "values.json"
    # no entry for forced_wait; an empty entry answers optional_only; needs_two lacks `second`
    values.write_text(json.dumps({"optional_only": {}, "needs_two": {"first": "x"}}))
    proc, events = run_json(folder, "--ui-values", str(values))
    assert proc.returncode == 3, proc.stderr
    check_stream(events)
    phases = {p["name"]: p for p in payload(events)["phases"]}
    # an input component waits even with requires_input: false; headless, nobody answers
    assert phases["Forced Wait"]["outcome"] == "ERROR" and "forced_wait" in phases["Forced Wait"]["docstring"]
    # every required input covered (there are none): answered, omitted inputs take their defaults
    assert phases["Optional Only"]["outcome"] == "PASS"
    recorded = {m["name"]: m["measured_value"] for m in phases["Optional Only"]["measurements"]}
    assert recorded == {"note": "fine", "steps": "a,b"}
    # a required input missing from the entry: it waits instead, and headless that is an ERROR
    assert phases["Needs Two"]["outcome"] == "ERROR" and "needs_two" in phases["Needs Two"]["docstring"]
    assert phases["Needs Two"]["measurements"] == []


IDENTIFY_YAML = "name: Identify\nmain:\n  - {name: M, python: phases.m:m}\n"


def test_identify_timeout_refuses_the_run_and_uploads_nothing(make_procedure) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(make_procedure(IDENTIFY_YAML, {"phases/m.py": "def m():\n    pass\n"}), "--ui-timeout", "0.3")
    try:
        code = driver.finish()  # stdin stays open: someone could answer, nobody does
    finally:
        driver.kill()
    assert code == 2
    assert [c["reason"] for c in of_type(driver.events, "ui_closed")] == ["timeout"]
    assert of_type(driver.events, "error") and not of_type(driver.events, "run_finished")
    assert not of_type(driver.events, "phase_started")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_started_at_is_taken_after_identify(make_procedure) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(make_procedure(IDENTIFY_YAML, {"phases/m.py": "def m():\n    pass\n"}))
    try:
        request = driver.next_event("ui_request")
        time.sleep(0.3)  # the operator takes a moment
        driver.answer(request["request_id"], {"serial_number": "SN-1", "part_number": "PN-1"})
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 0, driver.stderr()
    check_stream(driver.events)
    (closed,) = of_type(driver.events, "ui_closed")
    run = payload(driver.events)
    assert _ts(run["started_at"]) >= _ts(closed["ts"])  # scheduling start, after identify (§10)
    assert _ts(run["started_at"]) <= _ts(run["phases"][0]["started_at"])
    assert _ts(run["ended_at"]) >= _ts(run["phases"][0]["ended_at"])


BOUND_YAML = (
    "name: Bound\n"
    + UNIT
    + """main:
  - name: Ask
    ui:
      components:
        - {type: radio, key: led, required: true, bind: measurements.led, options: [{value: green, label: Green}]}
        - {type: number_input, key: n, bind: measurements.count}
  - name: Py Ask
    python: phases.a:py_ask
    ui: {components: [{type: switch, key: ok, bind: measurements.ok}]}
  - {name: Read, python: phases.a:read, depends_on: [ask, py_ask]}
"""
)

BOUND_PY = """
def py_ask(measurements):
    measurements.body = 1


def read(ask, py_ask, measurements):
    measurements.seen = [ask.measurements.led, ask.measurements.count, ask.outcome, py_ask.measurements.ok]
"""


def test_a_later_phase_reads_answers_bound_to_measurements(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # §4/§9: a phase cannot read its own prompt's answers; bound, a later phase reads them
    folder = make_procedure(BOUND_YAML, {"phases/a.py": BOUND_PY})
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"ask": {"led": "green", "n": 2}, "py_ask": {"ok": True}}))
    proc, events = run_json(folder, "--ui-values", str(values))
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    read = payload(events)["phases"][-1]
    assert read["name"] == "Read" and read["outcome"] == "PASS"
    assert read["measurements"][0]["measured_value"] == ["green", 2.0, "pass", True]


def test_human_run_warns_of_a_ui_values_typo_and_claims_no_false_wait(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli

    folder = make_procedure(
        "name: Typo\nmain:\n  - name: LED Check\n"
        "    ui: {components: [{type: radio, key: led, options: [{value: green, label: Green}]}]}\n"
    )
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"led_chek": {"led": "green"}, "identify": {"serial_number": "S", "part_number": "P"}}))
    proc = run_cli(["run", str(folder), "--ui-values", str(values)])
    assert proc.returncode == 3  # the prompt has no answer and nobody can give one
    assert "'led_chek'" in proc.stderr and "led_check" in proc.stderr
    # identify was answered from the file at once: no "waiting for an answer" notice for it
    assert "waiting for an answer" not in proc.stderr
    assert '--ui-values under "led_check"' in proc.stdout


STOPPED_BY_FAILURE_YAML = (
    "name: Halted\n"
    + UNIT
    + """main:
  - {name: Fails, python: phases.a:fails}
  - name: Ask
    ui: {components: [{type: switch, key: ok}]}
"""
)


def test_a_prompt_closed_by_a_failures_stop_keeps_the_run_fail_q1(make_procedure) -> None:  # type: ignore[no-untyped-def]
    # on_first_failure: stop closes the running UI-only prompt (§6): that phase ends STOP
    # (payload FAIL, §7.2), but the run keeps the failure's outcome, it is not ABORTED (Q1).
    folder = make_procedure(
        STOPPED_BY_FAILURE_YAML,
        # the pause lets Ask raise its prompt first (both start together; Ask needs no worker)
        {"phases/a.py": "import time\n\ndef fails(phase):\n    time.sleep(0.3)\n    phase.fail('bad board')\n"},
    )
    driver = Driver(folder)  # stdin stays open: the prompt really waits
    try:
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 1, driver.stderr()
    check_stream(driver.events)
    assert [c["reason"] for c in of_type(driver.events, "ui_closed")] == ["stopped"]
    run = payload(driver.events)
    assert run["outcome"] == "FAIL"
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("Fails", "FAIL"), ("Ask", "FAIL")]

"""Operator prompts and identify through the real CLI: --ui-values, stdin answers from a
test driver, headless fail-fast, --ui-timeout, and SIGINT."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.conftest import cli_env
from tests.procedure.runhelp import UNIT, check_stream, events_of, of_type, payload, run_json

LED_UI = """
    ui:
      components:
        - {type: radio, key: led, label: LED colour, required: true, bind: measurements.led_colour,
           options: [{value: green, label: Green}, {value: red, label: Red}]}
        - {type: number_input, key: volts, label: Volts, min: 0, max: 10, bind: measurements.volts}
    measurements:
      - {name: LED Colour, validators: [{operator: "==", expected_value: green}]}
      - {name: Volts, unit: V}
"""


def led_procedure(make_procedure: Any, *, python: bool = False, extra: str = "") -> Path:
    phase = "  - name: LED Check\n" + ("    python: phases.led:check\n" if python else "")
    return make_procedure(
        "name: Prompts\n" + UNIT + extra + "main:\n" + phase + LED_UI,
        {"phases/led.py": "def check(log):\n    log.info('body ran')\n"},
    )


class Driver:
    """`tofu-tui run --json` as a subprocess with stdin kept open for answers."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tofu_tui", "run", str(folder), "--json", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        self.events: list[dict[str, Any]] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_event(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        while True:
            line = self.lines.get(timeout=timeout)
            assert line is not None, f"stream ended before a {kind} event; stderr: {self.stderr()}"
            event: dict[str, Any] = json.loads(line)
            self.events.append(event)
            if event["type"] == kind:
                return event

    def next_warning(self, timeout: float = 30) -> dict[str, Any]:
        while True:
            event = self.next_event("phase_log", timeout)
            if event["level"] == "WARNING":
                return event

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def answer(self, request_id: str, values: dict[str, Any]) -> None:
        self.send(json.dumps({"type": "ui_response", "request_id": request_id, "values": values}))

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        while True:
            line = self.lines.get(timeout=10)
            if line is None:
                break
            self.events.append(json.loads(line))
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_values(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return str(path)


def test_ui_values_auto_answer_binds_measurements(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = led_procedure(make_procedure)
    values = write_values(tmp_path, {"led_check": {"led": "green", "volts": "4.5"}})
    proc, events = run_json(folder, "--ui-values", values)
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    (request,) = of_type(events, "ui_request")
    assert request["phase_key"] == "led_check"
    assert [c["key"] for c in request["components"]] == ["led", "volts"]
    (closed,) = of_type(events, "ui_closed")
    assert closed["request_id"] == request["request_id"] and closed["reason"] == "answered"
    run = payload(events)
    measured = {m["name"]: (m["measured_value"], m["outcome"]) for m in run["phases"][0]["measurements"]}
    assert measured == {"led_colour": ("green", "PASS"), "volts": (4.5, "UNSET")}


def test_ui_values_failing_answer_fails_the_phase(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = led_procedure(make_procedure, python=True)
    values = write_values(tmp_path, {"led_check": {"led": "red"}})
    proc, events = run_json(folder, "--ui-values", values)
    assert proc.returncode == 1
    run = payload(events)
    assert run["phases"][0]["measurements"][0]["outcome"] == "FAIL"
    assert any(e["message"] == "body ran" for e in of_type(events, "phase_log"))


def test_headless_prompt_fails_fast_naming_the_prompt(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = led_procedure(make_procedure, python=True)
    proc, events = run_json(folder)  # stdin is /dev/null: nobody can answer
    assert proc.returncode == 3
    check_stream(events)
    run = payload(events)
    assert run["phases"][0]["outcome"] == "ERROR"
    assert "led_check" in run["phases"][0]["docstring"] and "--ui-values" in run["phases"][0]["docstring"]
    # without --json and without a terminal: the same
    from tests.conftest import run_cli

    proc = run_cli(["run", str(folder), "--headless"])
    assert proc.returncode == 3
    assert "led_check" in proc.stdout


def test_invalid_ui_values_wait_instead_then_fail_headless(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = led_procedure(make_procedure)
    values = write_values(tmp_path, {"led_check": {"led": "blue"}})
    proc, events = run_json(folder, "--ui-values", values)
    assert proc.returncode == 3
    doc = payload(events)["phases"][0]["docstring"]
    assert "refused" in doc and "led" in doc


def test_display_only_prompt_never_blocks(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Display\n"
        + UNIT
        + "main:\n  - name: Info\n    python: phases.i:info\n    ui: {components: [{type: text, default_value: Hello}, {type: progress, key: p}]}\n",
        {"phases/i.py": "def info(ui):\n    ui.p = 50\n"},
    )
    proc, events = run_json(folder, "--headless")
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    (update,) = of_type(events, "ui_update")
    assert update["key"] == "p" and update["value"] == 50
    assert of_type(events, "ui_closed")[0]["reason"] == "done"


def test_stdin_answers_with_bad_lines_and_refusals(make_procedure) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(led_procedure(make_procedure, python=True))
    try:
        request = driver.next_event("ui_request")
        driver.send("this is not json")
        driver.answer("no-such-request", {"led": "green"})
        driver.send(json.dumps({"type": "something_else"}))
        driver.answer(request["request_id"], {"led": "purple"})  # not an option: refused
        driver.answer(request["request_id"], {"led": "green", "volts": 99})  # out of range
        warnings = [driver.next_warning() for _ in range(5)]
        assert all(w["level"] == "WARNING" for w in warnings)
        text = " | ".join(w["message"] for w in warnings)
        assert "not JSON" in text and "no-such-request" in text and "ui_response" in text
        assert warnings[3]["phase_key"] == "led_check" and "led" in warnings[3]["message"]
        assert "volts" in warnings[4]["message"]
        driver.answer(request["request_id"], {"led": "green", "volts": 3})
        driver.answer(request["request_id"], {"led": "green"})  # sent twice: the prompt is closed
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 0, driver.stderr()
    check_stream(driver.events)
    run = payload(driver.events)
    measured = {m["name"]: m["measured_value"] for m in run["phases"][0]["measurements"]}
    assert measured == {"led_colour": "green", "volts": 3.0}
    late = [e for e in driver.events if e["type"] == "phase_log" and "unknown request_id" in e["message"]]
    assert len(late) >= 2  # the unknown id, and the answer sent twice


def test_body_that_fails_dismisses_its_prompt(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = led_procedure(make_procedure, python=True)
    (folder / "phases" / "led.py").write_text("def check(phase):\n    phase.fail('no LED')\n")
    driver = Driver(folder)
    try:
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 1
    closed = of_type(driver.events, "ui_closed")
    assert [c["reason"] for c in closed] == ["dismissed"]


def test_ui_timeout_makes_the_phase_timeout(make_procedure) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(led_procedure(make_procedure), "--ui-timeout", "0.5")
    try:
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 4
    check_stream(driver.events)
    run = payload(driver.events)
    assert run["outcome"] == "TIMEOUT" and run["phases"][0]["outcome"] == "FAIL"
    assert of_type(driver.events, "ui_closed")[0]["reason"] == "timeout"


def test_phase_timeout_bounds_the_prompt_wait(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: T\n" + UNIT + "main:\n  - name: Ask\n    timeout: 400ms\n" + LED_UI,
    )
    driver = Driver(folder)
    try:
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 4
    assert payload(driver.events)["phases"][0]["docstring"] == "Phase timed out after 1 seconds"


IDENTIFY = """
name: Identify
unit:
  serial_number: {pattern: "^SN"}
  sub_units: [{label: Radio, key: radio}]
main: [{name: Show, python: phases.s:show}]
"""
SHOW = "def show(unit, measurements):\n    measurements.sn = unit.serial_number\n    measurements.radio = unit.sub_units['radio']\n"


def test_identify_headless_fails_at_once_pointing_to_auto_identify(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(IDENTIFY, {"phases/s.py": SHOW})
    proc, events = run_json(folder)
    assert proc.returncode == 2
    assert "auto_identify" in of_type(events, "error")[0]["message"]
    assert not of_type(events, "phase_started") and not of_type(events, "run_finished")
    from tests.conftest import run_cli

    proc = run_cli(["run", str(folder)])
    assert proc.returncode == 2 and "auto_identify" in proc.stderr


def test_identify_from_flags_and_ui_values(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(IDENTIFY, {"phases/s.py": SHOW})
    values = write_values(tmp_path, {"identify": {"serial_number": "XX-1", "sub_unit:radio": "R-9"}})
    # the flag wins over the file; the file gives the sub-unit
    proc, events = run_json(folder, "--ui-values", values, "--serial", "SN-5", "--part", "P-1", "--batch", "B7")
    assert proc.returncode == 0, proc.stderr
    run = payload(events)
    assert (run["serial_number"], run["part_number"], run["batch_number"]) == ("SN-5", "P-1", "B7")
    assert run["sub_units"] == ["R-9"]
    assert {m["name"]: m["measured_value"] for m in run["phases"][0]["measurements"]} == {"sn": "SN-5", "radio": "R-9"}
    # a serial that breaks the pattern: the prompt waits, and headless cannot answer
    proc, events = run_json(folder, "--ui-values", values, "--serial", "BAD", "--part", "P-1")
    assert proc.returncode == 2


def test_identify_answered_over_stdin(make_procedure) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(make_procedure(IDENTIFY, {"phases/s.py": SHOW}))
    try:
        request = driver.next_event("ui_request")
        assert request["phase_key"] == "identify"
        keys = [c["key"] for c in request["components"]]
        assert keys[:2] == ["serial_number", "part_number"] and "sub_unit:radio" in keys
        driver.answer(request["request_id"], {"serial_number": "nope", "part_number": "P", "sub_unit:radio": "R"})
        refusal = driver.next_warning()
        assert refusal["level"] == "WARNING" and "serial_number" in refusal["message"]
        driver.answer(request["request_id"], {"serial_number": "SN-42", "part_number": "P", "sub_unit:radio": "R"})
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 0, driver.stderr()
    check_stream(driver.events)
    assert payload(driver.events)["serial_number"] == "SN-42"


STOP_PROCEDURE = """
name: Stop
{unit}
main:
  - {{name: Long, python: phases.s:long}}
  - {{name: Next, python: phases.s:never, depends_on: [long]}}
teardown:
  - {{name: Park, python: phases.s:park}}
"""


def test_sigint_stops_runs_teardown_and_aborts(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        STOP_PROCEDURE.format(unit=UNIT),
        {
            "phases/s.py": """
            import time

            def long(log):
                log.info("working")
                time.sleep(60)

            def never():
                raise AssertionError("cancelled phases never run")

            def park(log):
                log.info("parked")
            """
        },
    )
    driver = Driver(folder, "--headless")
    try:
        driver.next_event("phase_log")  # "working": the long phase is inside its body
        driver.proc.send_signal(signal.SIGINT)
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 5, driver.stderr()
    check_stream(driver.events)
    run = payload(driver.events)
    assert run["outcome"] == "ABORTED"
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("Long", "FAIL"), ("Park", "PASS")]
    finished = {e["phase_key"]: e["outcome"] for e in of_type(driver.events, "phase_finished")}
    assert finished == {"long": "ABORTED", "park": "PASS"}
    assert any(e["message"] == "parked" for e in of_type(driver.events, "phase_log"))


def test_sigterm_while_a_ui_only_prompt_waits_aborts(make_procedure) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(led_procedure(make_procedure))
    try:
        driver.next_event("ui_request")
        driver.proc.send_signal(signal.SIGTERM)
        code = driver.finish()
    finally:
        driver.kill()
    assert code == 5
    check_stream(driver.events)
    run = payload(driver.events)
    assert run["outcome"] == "ABORTED"
    assert of_type(driver.events, "phase_finished")[0]["outcome"] == "ABORTED"
    assert of_type(driver.events, "ui_closed")[0]["reason"] == "stopped"


def test_events_parse_as_the_shared_model(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = led_procedure(make_procedure)
    values = write_values(tmp_path, {"led_check": {"led": "green"}})
    proc, _ = run_json(folder, "--ui-values", values)
    events_of(proc.stdout)  # raises if any line is not a valid event


def test_terminal_operator_answers_identify_and_prompt(make_procedure) -> None:  # type: ignore[no-untyped-def]
    """No --json, stdin a terminal: the live view asks the operator and re-asks on refusal."""
    import os
    import pty
    import select
    import time

    folder = make_procedure(
        """
        name: Interactive
        unit: {serial_number: {pattern: "^SN"}}
        main:
          - name: LED Check
            ui:
              components:
                - {type: radio, key: led, label: LED colour, required: true, bind: measurements.led,
                   options: [{value: green}, {value: red}]}
            measurements: [{name: LED, validators: [{operator: "==", expected_value: green}]}]
        """
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "run", str(folder)],
        stdin=slave, stdout=slave, stderr=slave, env=cli_env(), close_fds=True,
    )
    os.close(slave)
    answers = [b"XX\n", b"P1\n", b"SN1\n", b"P1\n", b"green\n"]
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
                if data.rstrip().endswith(b":") and answers:
                    os.write(master, answers.pop(0))
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(timeout=10) == 0
    text = out.decode(errors="replace")
    assert "Refused: serial_number" in text
    assert "LED Check" in text and "PASS" in text
    assert "\x1b[32m" in text  # colour on a terminal

"""`tofu-tui run` through the real CLI: exit codes, the NDJSON stream, the payload."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO_ROOT, run_cli
from tests.procedure.runhelp import UNIT, check_stream, of_type, payload, run_json

SAMPLE = REPO_ROOT / "tofu_tui" / "samples" / "sample_procedure"

RANGE_PHASE = """
def measure(measurements):
    measurements.volts = {value}
"""


def volts_procedure(make_procedure, value: float) -> Path:  # type: ignore[no-untyped-def]
    return make_procedure(
        "name: Volts\nversion: ' 2.0 '\n"
        + UNIT
        + """
main:
  - name: Measure
    python: phases.m:measure
    measurements:
      - {name: Volts, unit: V, description: Rail volts, validators: [{operator: ">=", expected_value: 3}, {operator: "<=", expected_value: 4}]}
""",
        {"phases/m.py": RANGE_PHASE.format(value=value)},
    )


def test_sample_procedure_passes_with_a_readable_view() -> None:
    proc = run_cli(["run", str(SAMPLE), "--serial", "SN-77"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "PSU Board EOL" in out
    assert "Rail Voltage:" in out and " V  [>= 3.25, <= 3.35]" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("PASS") and "6 phases" in last and "SN-77" in last
    assert "\x1b[" not in out  # no colour when stdout is not a terminal


def test_sample_procedure_json_stream_and_payload() -> None:
    proc, events = run_json(SAMPLE)
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    run = payload(events)
    assert run["outcome"] == "PASS"
    assert run["serial_number"] == "PSU-0001" and run["part_number"] == "PSU-33-A"
    assert run["revision_number"] == "B"
    assert run["procedure_version"] == "1.0.0"
    assert run["procedure_id"] is None
    assert next(p["name"] for p in run["phases"]) == "Power On"
    assert run["metadata"] == {"bench": "sample-bench", "probe": "TP4"}
    assert run["unit_metadata"] == {"firmware": "2.4.1"}
    assert all(set(p) <= {"name", "outcome", "started_at", "ended_at", "docstring", "retry_count", "measurements"} for p in run["phases"])
    assert proc.stderr == "" or "warning" not in proc.stderr.lower()


def test_pass_fail_exit_codes_and_measurement_payload(make_procedure) -> None:  # type: ignore[no-untyped-def]
    proc, events = run_json(volts_procedure(make_procedure, 3.3))
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    run = payload(events)
    (phase,) = run["phases"]
    assert phase["outcome"] == "PASS" and "retry_count" not in phase and "docstring" not in phase
    (m,) = phase["measurements"]
    assert m["name"] == "volts" and m["measured_value"] == 3.3 and m["units"] == "V"
    assert m["outcome"] == "PASS" and m["docstring"] == "Rail volts"
    assert run["procedure_version"] == "2.0"
    live = of_type(events, "measurement")[0]
    assert live["key"] == "volts" and live["outcome"] == "PASS" and live["unit"] == "V"

    proc, events = run_json(volts_procedure(make_procedure, 5.0))
    assert proc.returncode == 1
    check_stream(events)
    run = payload(events)
    assert run["outcome"] == "FAIL"
    assert run["phases"][0]["outcome"] == "FAIL"
    assert run["phases"][0]["measurements"][0]["outcome"] == "FAIL"
    assert of_type(events, "phase_finished")[0]["outcome"] == "FAIL"


def test_error_timeout_and_abort_exit_codes(make_procedure) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "raise ValueError('bad board')": (3, "ERROR", "ERROR"),
        "time.sleep(30)": (4, "TIMEOUT", "FAIL"),
        "phase.stop('operator said no')": (5, "ABORTED", "FAIL"),
        "phase.fail('nope')": (1, "FAIL", "FAIL"),
        "phase.skip()": (0, "PASS", "SKIP"),
        "return 42": (3, "ERROR", "ERROR"),
    }
    for i, (body, (code, outcome, phase_outcome)) in enumerate(cases.items()):
        folder = make_procedure(
            "name: Codes\n" + UNIT + "main:\n  - {name: Body, python: phases.b:body, timeout: 300ms}\n",
            {"phases/b.py": f"import time\n\ndef body(phase):\n    {body}\n"},
            subdir=f"p{i}",
        )
        proc, events = run_json(folder)
        assert proc.returncode == code, (body, proc.stderr)
        check_stream(events)
        run = payload(events)
        assert run["outcome"] == outcome, body
        assert run["phases"][0]["outcome"] == phase_outcome, body
        if outcome == "TIMEOUT":
            assert run["phases"][0]["docstring"] == "Phase timed out after 1 seconds"
            assert of_type(events, "phase_finished")[0]["outcome"] == "TIMEOUT"
        if body.startswith("raise"):
            assert "ValueError: bad board" in run["phases"][0]["docstring"]
            assert "bad board" in of_type(events, "phase_finished")[0]["error"]


def test_load_errors_exit_2_with_one_message_per_problem(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Broken\nmain:\n  - {name: A, python: phases.a:a}\n  - {name: B, python: phases.a:a, depends_on: [ghost]}\n",
        {"phases/a.py": "def a():\n    pass\n"},
    )
    proc = run_cli(["run", str(folder)])
    assert proc.returncode == 2
    assert "procedure.yaml:4: main[1].depends_on" in proc.stderr and "ghost" in proc.stderr
    assert proc.stdout == ""
    proc, events = run_json(folder)
    assert proc.returncode == 2
    assert [e["type"] for e in events] == ["error"]
    assert "ghost" in events[0]["message"]

    proc = run_cli(["run", str(folder.parent / "nowhere")])
    assert proc.returncode == 2 and "nowhere" in proc.stderr


def test_usage_errors_exit_2(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = volts_procedure(make_procedure, 3.3)
    proc = run_cli(["run", str(folder), "--upload"])
    assert proc.returncode == 2 and "upload" in proc.stderr and "not available yet" in proc.stderr
    bad = tmp_path / "ui.json"
    bad.write_text("{not json", encoding="utf-8")
    proc = run_cli(["run", str(folder), "--ui-values", str(bad)])
    assert proc.returncode == 2 and "--ui-values" in proc.stderr
    proc = run_cli(["run", str(folder), "--ui-timeout", "-1"])
    assert proc.returncode == 2


def test_retries_payload_and_docstring(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Retry\n"
        + UNIT
        + """
main:
  - {name: Flaky, python: phases.f:flaky, retry: {limit: 2, delay: 50ms}}
  - {name: Always, python: phases.f:always, retry: {limit: 1}}
  - {name: After, python: phases.f:after, depends_on: [flaky]}
execution: {on_first_failure: continue}
""",
        {
            "phases/f.py": """
            def flaky(run, phase, log):
                log.info(f"attempt {run.retry_count} of {run.retry_limit}")
                if run.retry_count < 2:
                    phase.retry("not yet")

            def always(phase):
                phase.retry()

            def after(flaky):
                assert flaky.outcome == "pass", flaky.outcome
            """
        },
    )
    proc, events = run_json(folder)
    check_stream(events)
    run = payload(events)
    entries = [(p["name"], p["outcome"], p.get("retry_count")) for p in run["phases"]]
    assert ("Flaky", "FAIL", None) in entries and ("Flaky", "FAIL", 1) in entries
    assert ("Flaky", "PASS", 2) in entries
    assert ("Always", "FAIL", None) in entries
    last_always = [p for p in run["phases"] if p["name"] == "Always"][-1]
    assert last_always["retry_count"] == 1
    assert last_always["docstring"] == "Phase exceeded retry limit (1 retries)"
    assert ("After", "PASS", None) in entries
    assert run["outcome"] == "FAIL" and proc.returncode == 1
    attempts = [e["attempt"] for e in of_type(events, "phase_started") if e["phase_key"] == "flaky"]
    assert attempts == [0, 1, 2]
    # logs: flattened, relative source file, real line numbers
    logs = [entry for entry in run["logs"] if entry["message"].startswith("attempt ")]
    assert [entry["message"] for entry in logs] == ["attempt 0 of 2", "attempt 1 of 2", "attempt 2 of 2"]
    assert {entry["source_file"] for entry in logs} == {"phases/f.py"}
    assert all(entry["line_number"] == 2 and entry["level"] == "INFO" for entry in logs)


def test_unit_as_it_stands_at_the_end_metadata_folding_and_procedure_id(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        """
name: Unit
unit:
  auto_identify: true
  serial_number: {default_value: SN1}
  part_number: {default_value: PN1}
  sub_units: [{label: Zeta Board, serial_number: {default_value: Z-1}}, {label: Alpha Board, serial_number: {default_value: A-1}}]
  metadata: {station: {default_value: bench-1}}
main:
  - {name: First, python: phases.u:first}
  - {name: Second, python: phases.u:second, depends_on: [first]}
""",
        {
            "phases/u.py": """
            def first(unit, run):
                unit.part_number = "PN2"
                unit.metadata["fw"] = "1.0"
                run.metadata["a"] = 1
                run.metadata["shared"] = "first"

            def second(unit, run):
                assert unit.part_number == "PN2"
                assert unit.metadata["station"] == "bench-1"
                run.metadata["shared"] = "second"
            """,
            "tofupilot.json": '{"procedureId": "proc-from-link", "procedureName": "Unit"}',
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr
    run = payload(events)
    assert run["part_number"] == "PN2"  # Q6
    assert run["serial_number"] == "SN1"
    assert run["sub_units"] == ["A-1", "Z-1"]  # sorted by sub-unit key
    assert run["unit_metadata"] == {"station": "bench-1", "fw": "1.0"}
    assert run["metadata"] == {"a": 1, "shared": "second"}
    assert run["procedure_id"] == "proc-from-link"
    proc, events = run_json(folder, "--procedure-id", "explicit-id")
    assert payload(events)["procedure_id"] == "explicit-id"
    (folder / "tofupilot.json").unlink()
    proc, events = run_json(folder, env={"TOFUPILOT_PROCEDURE_ID": "from-env"})
    assert payload(events)["procedure_id"] == "from-env"


def test_teardown_runs_after_stop_and_setup_failure(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Teardown\n"
        + UNIT
        + """
setup: [{name: Power, python: phases.t:power}]
main: [{name: Never, python: phases.t:never}]
teardown: [{name: Power Down, python: phases.t:off}]
""",
        {
            "phases/t.py": """
            def power(phase):
                phase.fail("no power")

            def never():
                raise AssertionError("must not run")

            def off(log):
                log.info("powered off")
            """
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 1
    check_stream(events)
    run = payload(events)
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("Power", "FAIL"), ("Power Down", "PASS")]


def test_shell_phase_exit_code(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Shell\n" + UNIT + "main:\n  - {name: Ok, executable: {command: 'echo hello'}}\n  - {name: Bad, executable: {command: 'echo oops >&2; exit 3'}}\n",
    )
    proc, events = run_json(folder)
    assert proc.returncode == 1
    check_stream(events)
    run = payload(events)
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("Ok", "PASS"), ("Bad", "FAIL")]
    levels = {(e["message"], e["level"]) for e in of_type(events, "phase_log")}
    assert ("hello", "INFO") in levels and ("oops", "ERROR") in levels


def test_two_slots_two_payloads_one_execution(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Slots\n"
        + UNIT
        + """
execution: {strategy: phase_first, slots: [{name: Left}, {name: Right}]}
setup: [{name: Rig, python: phases.s:rig, scope: execution}]
main: [{name: Check, python: phases.s:check}]
""",
        {
            "phases/s.py": """
            def rig(run):
                assert run.slot_id == "<shared>"

            def check(run, measurements):
                measurements.slot = run.slot_id
            """
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    runs = [e for e in events if e["type"] == "run_finished"]
    assert [e["slot"] for e in runs] == ["left", "right"]
    bodies = [e["run"] for e in runs]
    assert {b["execution_id"] for b in bodies} == {events[0]["execution_id"]}
    assert [(b["slot_key"], b["slot_name"]) for b in bodies] == [("left", "Left"), ("right", "Right")]
    for body, slot in zip(bodies, ["left", "right"], strict=True):
        names = [p["name"] for p in body["phases"]]
        assert names == ["Rig", "Check"]
        assert body["phases"][1]["measurements"][0]["measured_value"] == slot
    assert [e["slot"] for e in of_type(events, "run_started")] == ["left", "right"]


def test_no_slots_means_no_slot_fields(make_procedure) -> None:  # type: ignore[no-untyped-def]
    _proc, events = run_json(volts_procedure(make_procedure, 3.3))
    run = payload(events)
    assert not {"execution_id", "slot_key", "slot_name", "client_run_ref", "deployment_id"} & set(run)
    assert all(e.get("slot") is None for e in events)


def test_human_view_shows_failing_logs_and_limits(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Human\n"
        + UNIT
        + """
execution: {on_first_failure: continue}
main:
  - name: Rail
    python: phases.h:rail
    measurements: [{name: Rail, unit: V, validators: [{operator: "<", expected_value: 1}]}]
  - {name: Quiet, python: phases.h:quiet}
""",
        {
            "phases/h.py": """
            def rail(measurements, log):
                log.warning("rail is high")
                measurements.rail = 5

            def quiet(log):
                log.info("all good")
            """
        },
    )
    proc = run_cli(["run", str(folder)])
    assert proc.returncode == 1
    assert "Rail: 5 V  [< 1]  FAIL" in proc.stdout
    assert "rail is high" in proc.stdout
    assert "all good" not in proc.stdout  # logs of passing phases stay quiet
    assert proc.stdout.strip().splitlines()[-1].startswith("FAIL  2 phases, 1 passed, 1 failed")


def test_json_stdout_is_only_json(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Noisy\n" + UNIT + "main: [{name: Noisy, python: phases.n:noisy}]\n",
        {"phases/n.py": "import sys\n\ndef noisy():\n    print('to stdout')\n    print('to stderr', file=sys.stderr)\n"},
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0
    for line in proc.stdout.splitlines():
        json.loads(line)
    messages = {(e["message"], e["level"]) for e in of_type(events, "phase_log")}
    assert ("to stdout", "INFO") in messages and ("to stderr", "WARNING") in messages


def test_bad_phases_each_end_clearly_and_the_payload_stays_valid(make_procedure) -> None:  # type: ignore[no-untyped-def]
    from tofu_tui.models.run import RunCreate

    folder = make_procedure(
        "name: Bad Inputs\n"
        + UNIT
        + """
execution: {on_first_failure: continue, workers: 2}
main:
  - {name: Syntax, python: phases.syntax:run}
  - {name: Import, python: phases.imports:run}
  - {name: Exit, python: phases.b:exits}
  - {name: Wrong Type, python: phases.b:wrong_type}
  - name: Mismatch
    python: phases.b:mismatch
    measurements: [{name: Level, validators: [{operator: ">", expected_value: high}]}]
  - {name: Garbage, python: phases.b:garbage}
""",
        {
            "phases/syntax.py": "def run(:\n    pass\n",
            "phases/imports.py": "import no_such_module_anywhere\n\ndef run():\n    pass\n",
            "phases/b.py": """
            import sys

            def exits():
                sys.exit(3)

            def wrong_type(measurements):
                measurements.reading = object()

            def mismatch(measurements):
                measurements.level = 5

            def garbage():
                sys.stdout.buffer.write(bytes(range(256)) + b"\\n")
                print("still alive")
            """,
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 3
    check_stream(events)
    run = payload(events)
    RunCreate.model_validate(run)
    outcomes = {p["name"]: p for p in run["phases"]}
    assert outcomes["Syntax"]["outcome"] == "ERROR" and "SyntaxError" in outcomes["Syntax"]["docstring"]
    assert outcomes["Import"]["outcome"] == "ERROR" and "no_such_module_anywhere" in outcomes["Import"]["docstring"]
    assert outcomes["Exit"]["outcome"] == "ERROR" and "sys.exit(3)" in outcomes["Exit"]["docstring"]
    assert outcomes["Wrong Type"]["outcome"] == "ERROR"
    level = outcomes["Mismatch"]["measurements"][0]
    assert outcomes["Mismatch"]["outcome"] == "PASS" and level["outcome"] == "UNSET"
    assert level["validators"][0]["outcome"] == "UNSET"
    assert outcomes["Garbage"]["outcome"] == "PASS"
    assert any("still alive" in e["message"] for e in of_type(events, "phase_log"))


def test_forward_edges_workers_then_retry_and_q1_through_the_cli(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Order\n"
        + UNIT
        + """
execution: {workers: 1}
main:
  - {name: Uses Later, python: phases.o:uses, depends_on: [later]}
  - {name: Later, python: phases.o:later}
  - {name: Shaky, python: phases.o:shaky, retry: {limit: 1}, then: {fail: retry}, depends_on: [uses_later]}
  - {name: After Shaky, python: phases.o:later, depends_on: [shaky]}
  - {name: Halts, python: phases.o:halts, depends_on: [after_shaky]}
  - {name: Never, python: phases.o:later, depends_on: [halts]}
teardown: [{name: Park, python: phases.o:later}]
""",
        {
            "phases/o.py": """
            def later(measurements):
                measurements.v = 1

            def uses(later):
                assert later.outcome == "pass"

            def shaky(phase):
                phase.fail("still failing")

            def halts(phase):
                phase.fail("halt")
            """
        },
    )
    proc, events = run_json(folder)
    check_stream(events)
    kinds = [(e["type"], e["phase_key"]) for e in events if e["type"] in ("phase_started", "phase_finished")]
    # one worker: strictly one attempt at a time, in graph order (Q2)
    assert kinds == [
        ("phase_started", "later"), ("phase_finished", "later"),
        ("phase_started", "uses_later"), ("phase_finished", "uses_later"),
        ("phase_started", "shaky"), ("phase_finished", "shaky"),
        ("phase_started", "shaky"), ("phase_finished", "shaky"),
        ("phase_started", "after_shaky"), ("phase_finished", "after_shaky"),
        ("phase_started", "halts"), ("phase_finished", "halts"),
        ("phase_started", "park"), ("phase_finished", "park"),
    ]
    run = payload(events)
    # then.fail: retry used its one retry; the retry it could not take was suppressed, so
    # the run went on. Halts' FAIL under on_first_failure: stop cancelled Never, and the
    # run keeps the FAIL outcome (Q1), not ABORTED.
    assert run["outcome"] == "FAIL" and proc.returncode == 1
    assert [p["name"] for p in run["phases"]] == ["Later", "Uses Later", "Shaky", "Shaky", "After Shaky", "Halts", "Park"]

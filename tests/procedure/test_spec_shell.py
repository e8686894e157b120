"""procedure-format §2.2 shell phases through the real CLI: no UI, stdout at INFO,
stderr at ERROR, a relative working directory, a non-zero exit is FAIL."""

from __future__ import annotations

import psutil

from tests.procedure.runhelp import UNIT, check_stream, of_type, payload, run_json

SHELL_YAML = (
    "name: Shell\n"
    + UNIT
    + """execution: {workers: 1, on_first_failure: continue}
main:
  - name: With Ui
    executable: {command: "pwd; echo to-out; echo to-err >&2; echo; exit 3", working_directory: sub}
    ui: {components: [{type: switch, key: ok, required: true}]}
  - name: Passes
    executable: {command: "echo fine"}
"""
)


def test_a_shell_phase_has_no_ui_and_logs_stdout_info_stderr_error(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(SHELL_YAML, {"sub/.keep": ""})
    proc, events = run_json(folder)  # headless: a prompt would make the phase ERROR
    assert proc.returncode == 1, proc.stderr
    assert "main[0].ui" in proc.stderr and "ignored" in proc.stderr  # a load warning says so
    check_stream(events)
    assert not of_type(events, "ui_request")
    run = payload(events)
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("With Ui", "FAIL"), ("Passes", "PASS")]
    assert "docstring" not in run["phases"][0]  # a shell failure is FAIL, not error text
    logs = [(e["level"], e["message"]) for e in of_type(events, "phase_log") if e["phase_key"] == "with_ui"]
    assert logs[:3] == [("INFO", str((folder / "sub").resolve())), ("INFO", "to-out"), ("ERROR", "to-err")]
    assert all(message.strip() for _, message in logs)  # blank lines dropped


def test_a_background_child_holding_stdout_does_not_hold_the_phase(make_procedure, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pid_file = tmp_path / "child.pid"
    folder = make_procedure(
        "name: Background\n"
        + UNIT
        + "main:\n"
        + f"  - {{name: Starts Child, timeout: 20s, executable: {{command: 'sleep 60 & echo $! > {pid_file}; echo started'}}}}\n"
        + "  - {name: Next, timeout: 20s, executable: {command: 'echo next'}, depends_on: [starts_child]}\n"
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    # the phase ends with its shell, not with the child (before the fix: TIMEOUT after 20 s)
    assert [(p["name"], p["outcome"]) for p in payload(events)["phases"]] == [("Starts Child", "PASS"), ("Next", "PASS")]
    assert [e["message"] for e in of_type(events, "phase_log")] == ["started", "next"]
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE

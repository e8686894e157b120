"""run-protocol.md event fields through the real CLI, for the fields other tests do not
pin down: run_started's unit, attachment, measurement, phase_log levels, phase_finished."""

from __future__ import annotations

import json
from pathlib import Path

from tests.procedure.runhelp import UNIT, check_stream, of_type, payload, run_json

EVENTS_YAML = (
    "name: Events\nversion: ' 3.1 '\n"
    + UNIT
    + """execution: {workers: 1, on_first_failure: continue}
main:
  - name: Logs
    python: phases.a:logs
    measurements: [{name: Rail Volts, key: rail, unit: V, validators: [{operator: "<", expected_value: 1}]}]
  - {name: Stopper, python: phases.a:stopper}
"""
)

EVENTS_PY = """
def logs(log, attach, measurements):
    log.debug("d")
    log.warning("w")
    log.error("e")
    attach.data(b"12345", "x.bin")
    attach.data(b"123", "x.bin")  # duplicate names are allowed
    measurements.rail = 3


def stopper(phase):
    phase.stop("halt")
"""


def test_attachment_measurement_log_and_finished_fields(make_procedure) -> None:  # type: ignore[no-untyped-def]
    proc, events = run_json(make_procedure(EVENTS_YAML, {"phases/a.py": EVENTS_PY}))
    assert proc.returncode == 5, proc.stderr  # phase.stop() aborts the run
    check_stream(events)
    assert events[0]["procedure"] == {"name": "Events", "version": "3.1"}
    levels = [e["level"] for e in of_type(events, "phase_log") if e["phase_key"] == "logs"]
    assert levels == ["DEBUG", "WARNING", "ERROR"]  # log.debug is kept, unlike stdlib DEBUG
    attachments = of_type(events, "attachment")
    assert [(a["phase_key"], a["name"], a["size"]) for a in attachments] == [("logs", "x.bin", 5), ("logs", "x.bin", 3)]
    assert Path(attachments[0]["path"]).read_bytes() == b"12345"
    assert Path(attachments[1]["path"]).read_bytes() == b"123"
    (m,) = of_type(events, "measurement")
    assert (m["phase_key"], m["key"], m["name"], m["value"], m["unit"], m["outcome"]) == (
        "logs", "rail", "Rail Volts", 3.0, "V", "FAIL"
    )
    finished = {e["phase_key"]: e for e in of_type(events, "phase_finished")}
    assert finished["logs"]["outcome"] == "FAIL" and finished["logs"]["error"] is None
    assert finished["stopper"]["outcome"] == "ABORTED" and finished["stopper"]["attempt"] == 0
    assert all(isinstance(e["duration_ms"], int | float) and e["duration_ms"] >= 0 for e in finished.values())
    run = payload(events)
    assert run["outcome"] == "ABORTED" and run["procedure_version"] == "3.1"
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("Logs", "FAIL"), ("Stopper", "FAIL")]
    assert [line["level"] for line in run["logs"]] == ["DEBUG", "WARNING", "ERROR", "INFO"]


def test_run_started_carries_the_unit_given_in_ui_values(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Identify\nmain:\n  - {name: M, python: phases.m:m}\n", {"phases/m.py": "def m():\n    pass\n"}
    )
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"identify": {"serial_number": " SN-7 ", "part_number": "PN-7"}}))
    proc, events = run_json(folder, "--ui-values", str(values), "--revision", "C")
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    assert events[0]["unit"] == {
        "serial_number": "SN-7", "part_number": "PN-7", "revision_number": "C", "batch_number": None
    }
    run = payload(events)
    assert (run["serial_number"], run["part_number"], run["revision_number"]) == ("SN-7", "PN-7", "C")


def test_a_reader_that_goes_away_does_not_change_the_run_or_its_exit_status(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.conftest import cli_env

    marker = tmp_path / "second-ran"
    folder = make_procedure(
        "name: Closed\n" + UNIT + "main:\n  - {name: First, python: phases.a:first}\n"
        "  - {name: Second, python: phases.a:second, depends_on: [first]}\n",
        {"phases/a.py": f"import time\n\ndef first(log):\n    time.sleep(0.5)\n    for i in range(20):\n        log.info(str(i))\n\n"
         f"def second():\n    open({str(marker)!r}, 'w').close()\n    raise RuntimeError('second fails')\n"},
    )
    for extra in (["--json"], []):  # `tofu-tui run ... | head -1`, in both views
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tofu_tui", "run", str(folder), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()  # the first line, then the reader goes away
        proc.stdout.close()
        code = proc.wait(timeout=60)
        stderr = proc.stderr.read().decode()
        assert code == 3, stderr  # the run's ERROR, not a crash of the writer
        assert marker.exists()  # the run went on
        assert "event sink failed" not in stderr and "Traceback" not in stderr
        assert stderr.count("went away; the run goes on without it") == 1

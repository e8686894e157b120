"""Plugs in a whole run: phases call them, scopes, start failure → ERROR with teardown."""

from __future__ import annotations

from pathlib import Path

from tests.procedure.runhelp import UNIT, check_stream, of_type, payload, run_json

PLUGS = """
import os


class Meter:
    def __init__(self, volts=3.3, marker=None):
        self.volts = volts
        self.marker = marker

    def read(self):
        return self.volts

    def pid(self):
        return os.getpid()

    def __del__(self):
        if self.marker:
            with open(self.marker, "a") as f:
                f.write("deleted\\n")


class Broken:
    def __init__(self):
        raise RuntimeError("no instrument on /dev/ttyUSB9")
"""


def test_phases_call_plugs_per_scope(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "deleted.txt"
    folder = make_procedure(
        "name: Plugged\n"
        + UNIT
        + f"""
execution: {{slots: [{{name: L}}, {{name: R}}]}}
plugs:
  - {{name: Meter, python: "plugs.meters:Meter", scope: slot, config: {{volts: 3.25, marker: "{marker}"}}}}
  - {{name: Shared, python: "plugs.meters:Meter", scope: execution}}
setup: [{{name: Rig, python: phases.p:rig, scope: execution}}]
main:
  - name: Read
    python: phases.p:read
    measurements: [{{name: Volts, unit: V, validators: [{{operator: ">=", expected_value: 3.2}}]}}]
""",
        {
            "plugs/meters.py": PLUGS,
            "phases/p.py": """
            def rig(shared, run, measurements):
                measurements.shared_pid = shared.pid()

            def read(meter, shared, measurements):
                measurements.volts = meter.read()
                measurements.meter_pid = meter.pid()
                measurements.shared_pid = shared.pid()
            """,
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    check_stream(events)
    runs = [e["run"] for e in of_type(events, "run_finished")]
    values = [{m["name"]: m["measured_value"] for m in r["phases"][1]["measurements"]} for r in runs]
    assert all(v["volts"] == 3.25 for v in values)
    assert values[0]["meter_pid"] != values[1]["meter_pid"]  # one slot plug per slot
    assert values[0]["shared_pid"] == values[1]["shared_pid"]  # one execution plug
    assert marker.read_text().count("deleted") == 2  # slot plugs torn down with __del__


def test_plug_start_failure_is_error_and_teardown_runs(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Broken\n"
        + UNIT
        + """
plugs: [{name: Load Bank, python: "plugs.meters:Broken", scope: execution}]
main: [{name: Never, python: phases.p:never}]
teardown: [{name: Safe State, python: phases.p:safe}]
""",
        {
            "plugs/meters.py": PLUGS,
            "phases/p.py": "def never():\n    raise AssertionError('must not run')\n\ndef safe(log):\n    log.info('safe')\n",
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 3
    check_stream(events)
    run = payload(events)
    assert run["outcome"] == "ERROR"
    assert [(p["name"], p["outcome"]) for p in run["phases"]] == [("Safe State", "PASS")]
    assert "Load Bank" in run["docstring"] and "ttyUSB9" in run["docstring"]
    errors = [e for e in of_type(events, "phase_log") if e["level"] == "ERROR" and e["phase_key"] is None]
    assert errors and "Load Bank" in errors[0]["message"]

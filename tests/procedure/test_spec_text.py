"""Text no UTF-8 writer accepts (lone surrogates, from undecodable bytes) coming from a
phase or from --ui-values must not lose events or the run: run-protocol.md's seq stays
gap-free and run_finished carries the payload, with U+FFFD in place of each surrogate."""

from __future__ import annotations

import json
from pathlib import Path

from tests.procedure.runhelp import check_stream, of_type, payload, run_json

TEXT_YAML = """
name: Text
main:
  - {name: Emits, python: phases.t:emits, timeout: 10s}
"""

TEXT_PY = r"""
import os


def emits(log, measurements, run, unit):
    print("printed \udcff byte")
    log.info("logged \udcfe byte")
    os.write(1, b"raw \xff fd byte\n")
    measurements.label = "value \udcff"
    run.metadata["note"] = "meta \udcff"
    measurements.serial = unit.serial_number
"""


def test_lone_surrogates_become_replacement_characters(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(TEXT_YAML, {"phases/t.py": TEXT_PY})
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"identify": {"serial_number": "SN-\udcff", "part_number": "PN"}}), encoding="utf-8")
    proc, events = run_json(folder, "--ui-values", str(values))
    assert proc.returncode == 0, proc.stderr
    assert "event sink failed" not in proc.stderr
    check_stream(events)  # gap-free seq, run_finished last
    messages = [e["message"] for e in of_type(events, "phase_log")]
    assert sorted(messages) == ["logged \ufffd byte", "printed \ufffd byte", "raw \ufffd fd byte"]
    run = payload(events)
    assert run["serial_number"] == "SN-\ufffd"
    measured = {m["name"]: m["measured_value"] for m in run["phases"][0]["measurements"]}
    assert measured == {"label": "value \ufffd", "serial": "SN-\ufffd"}
    assert run["metadata"] == {"note": "meta \ufffd"}

"""The worker compiles the next phase's module ahead (a speed-up): that must never run
any of its code early, nor hide a problem with it."""

from __future__ import annotations

from pathlib import Path

from tests.procedure.runhelp import UNIT, check_stream, payload, run_json


def _procedure(folder: Path, second: str) -> Path:
    (folder / "phases").mkdir(parents=True)
    (folder / "phases" / "first.py").write_text("def first(measurements):\n    measurements.a = 1\n", encoding="utf-8")
    (folder / "phases" / "second.py").write_text(second, encoding="utf-8")
    (folder / "procedure.yaml").write_text(
        "name: Prefetch\n" + UNIT + "main:\n"
        "  - {name: first, python: phases.first}\n"
        "  - {name: second, python: phases.second}\n",
        encoding="utf-8",
    )
    return folder


def test_the_next_module_runs_once_and_only_when_its_phase_runs(tmp_path: Path) -> None:
    marker = tmp_path / "imports.txt"
    folder = _procedure(
        tmp_path / "proc",
        f"with open({str(marker)!r}, 'a') as fh:\n    fh.write('imported\\n')\n\n"
        "def second(measurements):\n    measurements.b = 2\n",
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    assert marker.read_text(encoding="utf-8") == "imported\n"
    assert [p["outcome"] for p in payload(events)["phases"]] == ["PASS", "PASS"]


def test_a_syntax_error_in_the_next_module_is_still_reported_by_its_phase(tmp_path: Path) -> None:
    folder = _procedure(tmp_path / "proc", "def second(measurements)\n    pass\n")
    proc, events = run_json(folder)
    assert proc.returncode == 3, proc.stderr  # the run is ERROR
    run = payload(events)
    first, second = run["phases"]
    assert first["outcome"] == "PASS"
    assert second["outcome"] == "ERROR"
    logs = "\n".join(log["message"] for log in run["logs"])
    assert "SyntaxError" in logs and "second.py" in logs

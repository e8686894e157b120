"""Procedures a technician really writes, run through the real CLI: async functions,
classes, nested packages, unicode, odd measurement keys, huge arrays, a phase that
changes directory, leaves a child holding stdout, reads stdin, sets signal handlers or
uses multiprocessing. Each ends with a clear message and a valid payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from tests.procedure.runhelp import UNIT, check_stream, of_type, payload, run_json

HOSTILE_YAML = (
    "name: Hostile\n"
    + UNIT
    + """execution: {workers: 1, on_first_failure: continue}
main:
  - {name: Async Phase, key: async_phase, python: phases.odd:async_phase, timeout: 5s}
  - {name: Class Phase, key: class_phase, python: phases.odd:ClassPhase, timeout: 5s}
  - {name: Callable Object, key: callable_object, python: phases.odd:callable_object, timeout: 5s}
  - {name: Nested, python: "pkg.sub.mod:go", timeout: 5s}
  - {name: Change Dir, python: phases.odd:change_dir, timeout: 5s}
  - {name: After Chdir, python: phases.odd:after_chdir, timeout: 5s, depends_on: [change_dir]}
  - {name: Child Holds Stdout, python: phases.odd:child, timeout: 5s}
  - {name: Reads Stdin, python: phases.odd:reads_stdin, timeout: 5s}
  - {name: Prompts On Stdin, python: phases.odd:prompts_on_stdin, timeout: 5s}
  - {name: Sets Signals, python: phases.odd:sets_signals, timeout: 5s}
  - {name: Pickles Own Function, python: phases.odd:pickles_own, timeout: 20s}
  - {name: Pickles Helper, python: phases.odd:pickles_helper, timeout: 20s}
  - {name: Missing Dependency, python: phases.odd:missing_dependency, timeout: 5s}
  - {name: Unrecordable, python: phases.odd:unrecordable, timeout: 5s}
"""
)

ODD = """
import multiprocessing
import os
import signal
import subprocess
import sys

from helpers.work import square


async def async_phase(measurements):
    measurements.never = 1


class ClassPhase:
    def __init__(self, log):
        log.info("constructed")


class _Callable:
    def __call__(self, measurements):
        measurements.called = True


callable_object = _Callable()


def change_dir(log):
    os.chdir("/")
    with open(os.path.join(os.environ["PROC_DIR_FOR_TEST"], "note.txt"), "w") as fh:
        fh.write("note")


def after_chdir(measurements, attach):
    measurements.cwd = os.getcwd()
    attach.file("note.txt")  # relative: resolved against the procedure directory


def child(log):
    proc = subprocess.Popen(["sleep", "60"], stdout=sys.stdout, stderr=sys.stderr)
    with open(os.environ["CHILD_PID_FILE"], "w") as fh:
        fh.write(str(proc.pid))
    log.info("child started")


def reads_stdin(measurements):
    measurements.line = sys.stdin.readline()


def prompts_on_stdin():
    input("Serial? ")


def sets_signals():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _own(x):
    return x * x


def pickles_own():
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pool.map(_own, [1, 2])


def pickles_helper(measurements):
    with multiprocessing.get_context("fork").Pool(2) as pool:
        measurements.squares = pool.map(square, [1, 2, 3])


def missing_dependency():
    import tofu_no_such_dependency  # noqa: F401


def unrecordable(measurements):
    measurements.kept = 1
    measurements.reading = {"raw": b"bytes"}
"""


def hostile_procedure(make_procedure: Any) -> Path:
    return make_procedure(
        HOSTILE_YAML,
        {
            "phases/odd.py": ODD,
            "helpers/__init__.py": "",
            "helpers/work.py": "def square(x):\n    return x * x\n",
            "pkg/__init__.py": "",
            "pkg/top.py": "TOP = 2\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/helper.py": "VALUE = 1\n",
            "pkg/sub/mod.py": "from .helper import VALUE\nfrom ..top import TOP\n\ndef go(measurements):\n    measurements.total = VALUE + TOP\n",
        },
    )


def test_hostile_phases_end_clearly_and_the_payload_stays_valid(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = hostile_procedure(make_procedure)
    pid_file = tmp_path / "child.pid"
    proc, events = run_json(
        folder, env={"PROC_DIR_FOR_TEST": str(folder), "CHILD_PID_FILE": str(pid_file)}
    )
    assert proc.returncode == 3, proc.stderr  # the ERROR phases make the run ERROR
    check_stream(events)
    run = payload(events)
    phases = {p["name"]: p for p in run["phases"]}
    assert len(phases) == len(run["phases"]) == 14  # each ran once, none lost

    def measured(name: str) -> dict[str, Any]:
        return {m["name"]: m.get("measured_value") for m in phases[name]["measurements"]}

    # async def: ERROR that says what to do, without a "never awaited" warning in the logs
    doc = phases["Async Phase"]["docstring"]
    assert phases["Async Phase"]["outcome"] == "ERROR" and "async function" in doc and "asyncio.run" in doc
    assert not [line for line in run["logs"] if "never awaited" in line["message"]]
    # a class: constructing it returns an instance, which is a return value (§4)
    assert phases["Class Phase"]["outcome"] == "ERROR"
    assert "returned a value" in phases["Class Phase"]["docstring"]
    assert phases["Callable Object"]["outcome"] == "PASS" and measured("Callable Object") == {"called": True}
    # nested packages with relative imports, loaded through a dotted reference
    assert phases["Nested"]["outcome"] == "PASS" and measured("Nested") == {"total": 3.0}
    # a phase's chdir does not move the next phase on the same worker
    assert phases["After Chdir"]["outcome"] == "PASS"
    assert measured("After Chdir") == {"cwd": str(folder.resolve())}
    assert [e["name"] for e in of_type(events, "attachment")] == ["note.txt"]
    # a child that keeps stdout open neither blocks the run nor outlives it
    assert phases["Child Holds Stdout"]["outcome"] == "PASS"
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    # stdin is not the operator: reading it gives end-of-file at once, never a hang
    assert phases["Reads Stdin"]["outcome"] == "PASS" and measured("Reads Stdin") == {"line": ""}
    assert phases["Prompts On Stdin"]["outcome"] == "ERROR"
    assert "EOFError" in phases["Prompts On Stdin"]["docstring"]
    # the body runs on a worker thread (§4): signal handlers cannot be set there
    assert phases["Sets Signals"]["outcome"] == "ERROR"
    assert "main thread" in phases["Sets Signals"]["docstring"]
    # multiprocessing: functions of the fresh-loaded phase module cannot be pickled; say why
    doc = phases["Pickles Own Function"]["docstring"]
    assert phases["Pickles Own Function"]["outcome"] == "ERROR" and "helper module" in doc
    assert phases["Pickles Helper"]["outcome"] == "PASS"
    assert measured("Pickles Helper") == {"squares": [1, 4, 9]}
    # a missing third-party module names the interpreter to install it into
    doc = phases["Missing Dependency"]["docstring"]
    assert "No module named 'tofu_no_such_dependency'" in doc and "install the procedure's dependencies" in doc
    assert "python" in doc.split("This phase runs on ", 1)[1]
    # a value the API cannot record: the author's line, not the engine's insides
    doc = phases["Unrecordable"]["docstring"]
    assert phases["Unrecordable"]["outcome"] == "ERROR" and measured("Unrecordable") == {"kept": 1.0}
    assert "phases/odd.py" in doc and "measurement 'reading'" in doc and "worker.py" not in doc


UNICODE_YAML = (
    "name: Prüfung 電圧\n"
    + UNIT
    + """main:
  - name: Spannung prüfen ✓
    python: phases/spannung.py
    measurements:
      - {name: Größe (mV), unit: µV, validators: [{operator: ">=", expected_value: 1}]}
      - name: Sweep
        x_axis: {legend: Zeit, unit: s}
        y_axis: [{key: volts, unit: V}]
"""
)

SPANNUNG = """
def spannung(measurements, log):
    log.info("Grüße ✓ 日本")
    print("stdout ünïcode")
    measurements.groe_mv = 2           # to_identifier drops ß: "Größe (mV)" -> groe_mv
    setattr(measurements, "with space", 1)
    setattr(measurements, "rail.v3", 3)
    measurements.big = list(range(100_000))
    sweep = measurements.sweep
    sweep.x_axis = [i / 1000 for i in range(50_000)]
    sweep.y_axis.volts = [1.5] * 50_000
"""


def test_unicode_names_odd_keys_and_large_arrays(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(UNICODE_YAML, {"phases/spannung.py": SPANNUNG})
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    assert events[0]["procedure"]["name"] == "Prüfung 電圧"
    run = payload(events)
    (phase,) = run["phases"]
    assert phase["name"] == "Spannung prüfen ✓"
    by_name = {m["name"]: m for m in phase["measurements"]}
    assert set(by_name) == {"groe_mv", "with space", "rail.v3", "big", "sweep"}
    assert by_name["groe_mv"]["units"] == "µV" and by_name["groe_mv"]["outcome"] == "PASS"
    assert by_name["with space"]["measured_value"] == 1.0
    assert by_name["big"]["measured_value"] == list(range(100_000))
    sweep = by_name["sweep"]
    assert len(sweep["x_axis"]["data"]) == 50_000 and sweep["x_axis"]["name"] == "Zeit"
    assert sweep["y_axis"][0]["data"] == [1.5] * 50_000 and sweep["y_axis"][0]["units"] == "V"
    messages = [line["message"] for line in run["logs"]]
    assert "Grüße ✓ 日本" in messages and "stdout ünïcode" in messages


SHADOWING = ("json", "types", "queue", "code", "select", "socket", "signal", "threading", "traceback", "re", "io", "string", "random")


def test_procedure_files_named_like_the_standard_library_do_not_break_the_worker(make_procedure) -> None:  # type: ignore[no-untyped-def]
    # The worker starts in the procedure directory: a technician's `queue.py` or `code.py`
    # there must not replace the modules the engine's own worker imports.
    files = {f"{name}.py": f"raise RuntimeError('the procedure\\'s {name}.py was imported')\n" for name in SHADOWING}
    files["phases/a.py"] = "import sys\n\ndef go(measurements):\n    measurements.path0 = sys.path[0]\n"
    folder = make_procedure("name: Shadow\n" + UNIT + "main:\n  - {name: Go, python: phases.a:go, timeout: 10s}\n", files)
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    check_stream(events)
    (phase,) = payload(events)["phases"]
    assert phase["outcome"] == "PASS"
    assert phase["measurements"][0]["measured_value"] == str(folder.resolve())  # still sys.path[0] (§1)

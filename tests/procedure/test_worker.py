"""Phase API (procedure-format §4) on real worker processes and real procedure folders."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.procedure.poolkit import Session, messages, run_phases, with_pool, yaml_for
from tofu_tui.procedure.evaluate import MeasurementRecord, YAxisRecord
from tofu_tui.procedure.pool import (
    LiveAttachment,
    LiveLog,
    LiveMeasurement,
    LiveUiUpdate,
    PhaseResultView,
)


def test_builtins_are_injected_by_name(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("all"),
        {
            "phases/all.py": """
            import os

            def all(phase, measurements, log, ui, unit, run, attach):
                log.info(f"{run.slot_id}|{run.job_id}|{run.retry_count}|{run.retry_limit}")
                log.info(f"{unit.serial_number}|{unit.part_number}|{unit.revision_number}")
                log.info(f"cwd={os.getcwd()}")
                import sys
                log.info(f"path0={sys.path[0]}")
                log.info(f"env={os.environ.get('WORKER_ID')}|{os.environ.get('PYTHONPATH')}|{os.environ.get('PYTHONUNBUFFERED')}")
                ui.progress = 40
                with open("report.txt", "w") as fh:
                    fh.write("report")
                attach.file("report.txt")
                attach.data(b"\\x00\\x01raw", "blob.bin")
                measurements.value = 1
            """
        },
    )
    os.environ["PYTHONPATH"] = "/nonexistent"
    try:
        async def body(s: Session):
            return await s.run("all", retry_count=1, retry_limit=2, slot_id="bay_1", job_id="J7"), s.events

        result, events = with_pool(folder, body)
    finally:
        del os.environ["PYTHONPATH"]
    assert result.error is None, result.error
    logs = messages(result)
    assert logs[0] == "bay_1|J7|1|2"
    assert logs[1] == "SN1|PN1|None"
    assert logs[2] == f"cwd={folder.resolve()}"
    assert logs[3] == f"path0={folder.resolve()}"
    assert logs[4] == "env=0|None|1"
    # log.* records the caller's file (relative to the procedure) and line
    assert result.logs[0].source_file == "phases/all.py"
    assert result.logs[0].line_number == 4
    names = [a.name for a in result.attachments]
    assert names == ["report.txt", "blob.bin"]
    blob = result.attachments[1]
    assert blob.path.read_bytes() == b"\x00\x01raw" and blob.size == 5
    assert result.attachments[0].path.read_text() == "report"
    assert result.attachments[0].path.parent != folder  # a copy the engine owns
    kinds = [type(e) for e in events]
    assert LiveUiUpdate in kinds and LiveAttachment in kinds and LiveMeasurement in kinds
    ui = next(e for e in events if isinstance(e, LiveUiUpdate))
    assert (ui.key, ui.value, ui.job_id) == ("progress", 40, "J7")


def test_measurement_values_and_keys(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("m"),
        {
            "phases/m.py": """
            from decimal import Decimal

            def m(measurements):
                measurements.i = 3
                measurements.f = 2.5
                measurements.b = True
                measurements.s = "ok"
                measurements.l = [1, 2]
                measurements.d = {"a": 1}
                measurements.n = None
                measurements.dec = Decimal("1.25")
                measurements._private = 5
                measurements.twice = 1
                measurements.twice = 2
                assert measurements.twice == 2.0 and measurements.twice > 1
                measurements.agg = 10
                measurements.agg.aggregations.mean = 4
                measurements.agg.aggregations.kind = "rms"
            """
        },
    )
    (result,) = run_phases(folder, "m")
    assert result.error is None, result.error
    values = {k: r.value for k, r in result.measurements.items()}
    assert values == {
        "i": 3.0, "f": 2.5, "b": True, "s": "ok", "l": [1, 2], "d": {"a": 1}, "n": None,
        "dec": 1.25, "twice": 2.0, "agg": 10.0,
    }
    assert isinstance(values["i"], float) and values["l"] == [1, 2] and isinstance(values["l"][0], int)
    assert result.measurements["agg"].aggregations == {"mean": 4.0, "kind": "rms"}


def test_multidimensional_measurement(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("curve"),
        {
            "phases/curve.py": """
            def curve(measurements, log):
                m = measurements.iv
                m.x_axis = [0, 1, 2]
                log.info("only x")
                m.y_axis.current = [0.0, 0.5, 1.0]
                m.y_axis.current.aggregations.max = 1.0
                m.y_axis.voltage = (1, 2, 3)
            """
        },
    )

    async def body(s: Session):
        return await s.run("curve"), s.events

    result, events = with_pool(folder, body)
    assert result.error is None, result.error
    record = result.measurements["iv"]
    assert record.has_value is False
    assert record.x_axis == [0, 1, 2]
    assert record.y_axis == {
        "current": YAxisRecord(data=[0.0, 0.5, 1.0], aggregations={"max": 1.0}),
        "voltage": YAxisRecord(data=[1, 2, 3], aggregations={}),
    }
    # the record exists only once x and a y axis are set: nothing was emitted before that
    order = [e.line.message if isinstance(e, LiveLog) else "m" for e in events]
    assert order.index("only x") < order.index("m")


def test_wrong_type_raises_in_phase_and_keeps_earlier_data(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("bad"),
        {
            "phases/bad.py": """
            def bad(measurements):
                measurements.before = 1
                measurements.voltage = object()
            """
        },
    )
    (result,) = run_phases(folder, "bad")
    assert result.error is not None
    assert "measurement 'voltage'" in result.error and "object" in result.error
    assert "Traceback" in result.error and "phases/bad.py" in result.error
    assert result.measurements["before"].value == 1.0
    assert "voltage" not in result.measurements
    assert any(line.level == "ERROR" and "Traceback" in line.message for line in result.logs)


def test_nan_and_infinity_make_the_phase_error_even_if_caught(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("nan", "inf", "agg"),
        {
            "phases/nan.py": """
            def nan(measurements):
                try:
                    measurements.x = float("nan")
                except ValueError:
                    pass
            """,
            "phases/inf.py": """
            def inf(measurements):
                measurements.y = [1.0, float("inf")]
            """,
            "phases/agg.py": """
            def agg(measurements):
                measurements.z = 1
                try:
                    measurements.z.aggregations.mean = float("nan")
                except ValueError:
                    pass
            """,
        },
    )
    nan, inf, agg = run_phases(folder, "nan", "inf", "agg")
    assert agg.error is not None and "aggregation 'mean' is NaN or infinite" in agg.error
    assert nan.error is not None and "NaN or infinite" in nan.error
    assert inf.error is not None and "NaN or infinite" in inf.error
    assert nan.measurements == {} and inf.measurements == {}


def test_phase_signals_and_their_messages(make_procedure) -> None:
    files = {
        f"phases/{kind}.py": f"def {kind}(phase):\n    phase.{kind}('because {kind}')\n"
        for kind in ("fail", "skip", "retry", "stop")
    }
    files["phases/swallow.py"] = """
    def swallow(phase):
        try:
            phase.fail("nope")
        except Exception:
            pass
    """
    folder = make_procedure(yaml_for("fail", "skip", "retry", "stop", "swallow"), files)
    results = run_phases(folder, "fail", "skip", "retry", "stop", "swallow")
    for kind, result in zip(("fail", "skip", "retry", "stop"), results, strict=False):
        assert result.error is None
        assert result.signal == kind
        assert result.signal_message == f"because {kind}"
        info = messages(result, "INFO")
        assert any(f"because {kind}" in m for m in info), info
    assert results[4].signal is None and results[4].error is None


def test_return_value_exception_and_sys_exit_are_errors(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("returns", "raises", "exits", "exits_bare"),
        {
            "phases/returns.py": "def returns(measurements):\n    measurements.kept = 1\n    return 42\n",
            "phases/raises.py": "def raises():\n    raise RuntimeError('boom')\n",
            "phases/exits.py": "import sys\ndef exits():\n    sys.exit(3)\n",
            "phases/exits_bare.py": "import sys\ndef exits_bare():\n    sys.exit()\n",
        },
    )
    returns, raises, exits, bare = run_phases(folder, "returns", "raises", "exits", "exits_bare")
    assert returns.error is not None and "returned a value (42)" in returns.error
    assert returns.measurements["kept"].value == 1.0
    assert raises.error is not None and "RuntimeError: boom" in raises.error
    assert "Traceback" in raises.error and "worker.py" not in raises.error
    assert raises.logs[-1].level == "ERROR" and raises.logs[-1].source_file == "phases/raises.py"
    assert exits.error == "Phase called sys.exit(3)"
    assert bare.error == "Phase called sys.exit()"


def test_output_and_logging_capture(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("talk"),
        {
            "phases/talk.py": """
            import logging, subprocess, sys
            print("imported")

            def talk():
                print("  hello  ")
                print("")
                print("two\\nlines")
                print("to stderr", file=sys.stderr)
                sys.stdout.write("no newline")
                logging.getLogger("dev").debug("dropped")
                logging.getLogger("dev").info("via logging")
                logging.warning("root warning")
                subprocess.run(["sh", "-c", "echo child out; echo child err >&2"], check=True)
            """
        },
    )
    (result,) = run_phases(folder, "talk")
    assert result.error is None, result.error
    got = [(line.level, line.message) for line in result.logs]
    assert got[:5] == [
        ("INFO", "imported"),
        ("INFO", "hello"),
        ("INFO", "two"),
        ("INFO", "lines"),
        ("WARNING", "to stderr"),
    ]
    assert ("INFO", "via logging") in got
    assert ("WARNING", "root warning") in got
    assert ("INFO", "child out") in got and ("WARNING", "child err") in got
    assert ("INFO", "no newline") in got
    assert all(m != "dropped" for _, m in got)
    logged = next(line for line in result.logs if line.message == "via logging")
    assert logged.source_file == "phases/talk.py" and logged.line_number == 11


def test_module_loads_fresh_each_attempt_but_helpers_stay_cached(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("fresh"),
        {
            "helpers/__init__.py": "",
            "helpers/state.py": "calls = []\n",
            "phases/fresh.py": """
            from __future__ import annotations

            import dataclasses
            import sys
            from helpers import state
            counter = 0


            @dataclasses.dataclass
            class Reading:  # dataclasses look the module up while it executes
                value: dataclasses.InitVar[int]

            def fresh(log):
                global counter
                counter += 1
                state.calls.append(1)
                log.info(f"{counter} {len(state.calls)} {'phases.fresh' in sys.modules} {__name__}")
            """,
        },
    )
    first, second = run_phases(folder, "fresh", "fresh")
    assert messages(first) == ["1 1 False phases.fresh"]
    assert messages(second) == ["1 2 False phases.fresh"]


def test_references_slash_form_and_import_fallback(make_procedure) -> None:
    folder = make_procedure(
        yaml_for(
            "  - {name: slash, python: phases/by_path.py}",
            "  - {name: colon, python: 'phases/by_path:other'}",
            "  - {name: fallback, python: 'gc:collect'}",
            "  - {name: relative, python: 'pkg.sub:run'}",
        ),
        {
            "phases/by_path.py": "def by_path(log):\n    log.info('stem')\n\ndef other(log):\n    log.info('other')\n",
            "pkg/__init__.py": "",
            "pkg/helper.py": "WORD = 'relative import'\n",
            "pkg/sub.py": "from .helper import WORD\n\ndef run(log):\n    log.info(WORD)\n",
        },
    )
    slash, colon, fallback, relative = run_phases(folder, "slash", "colon", "fallback", "relative")
    assert messages(slash) == ["stem"]
    assert messages(colon) == ["other"]
    # gc is not in the procedure tree: imported by name; gc.collect() returns a number
    assert fallback.error is not None and "returned a value" in fallback.error
    assert messages(relative) == ["relative import"]


def test_import_errors_are_errors_and_the_worker_is_reused(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("syntax", "importer", "nofunc", "ok"),
        {
            "phases/syntax.py": "def syntax(:\n    pass\n",
            "phases/importer.py": "import does_not_exist_anywhere\n\ndef importer():\n    pass\n",
            "phases/nofunc.py": "def something_else():\n    pass\n",
            "phases/ok.py": "import os\n\ndef ok(log):\n    log.info(str(os.getpid()))\n",
        },
    )

    async def body(s: Session):
        first = await s.run("ok")
        bad = [await s.run(k) for k in ("syntax", "importer", "nofunc")]
        last = await s.run("ok")
        return first, bad, last

    first, (syntax, importer, nofunc), last = with_pool(folder, body)
    assert syntax.error is not None and "SyntaxError" in syntax.error
    assert importer.error is not None and "does_not_exist_anywhere" in importer.error
    assert nofunc.error is not None and "has no function 'nofunc'" in nofunc.error
    assert last.error is None and messages(first) == messages(last)  # same worker process


def test_parameters_from_results_defaults_and_errors(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("reader", "defaults", "missing", "posonly", "varargs"),
        {
            "phases/reader.py": """
            def reader(measure, log):
                m = measure.measurements
                log.info(f"{measure.outcome} {measure.duration_ms} {m.v + 1} {m.v.aggregations.mean}")
                log.info(f"{m.iv.x_axis} {list(m.iv.y_axis.current)} {m.iv.y_axis.current.aggregations.max}")
            """,
            "phases/defaults.py": "def defaults(log, limit=5, *, mode='fast'):\n    log.info(f'{limit} {mode}')\n",
            "phases/missing.py": "def missing(log, dmm):\n    pass\n",
            "phases/posonly.py": "def posonly(log, /):\n    pass\n",
            "phases/varargs.py": "def varargs(*args, **kwargs):\n    print(args, kwargs)\n",
        },
    )
    view = PhaseResultView(
        outcome="FAIL",  # shown lowercase to the phase
        duration_ms=12.5,
        measurements={
            "v": MeasurementRecord(key="v", value=2.0, aggregations={"mean": 1.5}),
            "iv": MeasurementRecord(
                key="iv", value=None, has_value=False, x_axis=[1, 2],
                y_axis={"current": YAxisRecord(data=[3, 4], aggregations={"max": 4})},
            ),
        },
    )

    async def body(s: Session):
        results = {"measure": view, "other_phase": view}
        return [
            await s.run(k, results=results, plugs={"Scope": {"address": "nowhere"}})
            for k in ("reader", "defaults", "missing", "posonly", "varargs")
        ]

    reader, defaults, missing, posonly, varargs = with_pool(folder, body)
    assert reader.error is None, reader.error
    assert messages(reader) == ["fail 12.5 3.0 1.5", "[1, 2] [3, 4] 4"]
    assert messages(defaults) == ["5 fast"]
    assert missing.error is not None
    assert "'dmm'" in missing.error and "Scope" in missing.error
    assert "measure, other_phase" in missing.error
    assert posonly.error is not None and "positional-only" in posonly.error
    assert varargs.error is None and messages(varargs) == ["() {}"]


def test_unit_and_metadata_rules(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("unitw", "newsub", "badmeta", "bigmeta"),
        {
            "phases/unitw.py": """
            def unitw(unit, run, log):
                log.info(unit.sub_units.PSU + " " + unit.sub_units["psu"])
                unit.sub_units.psu = "PSU-2"
                unit.revision_number = "B"
                unit.metadata["fw.version"] = "1.2"
                run.metadata["attempts"] = 3
                run.metadata["ratio"] = 0.5
            """,
            "phases/newsub.py": "def newsub(unit):\n    unit.sub_units['fan'] = 'F1'\n",
            "phases/badmeta.py": "def badmeta(run):\n    run.metadata['bad key!'] = 1\n",
            "phases/bigmeta.py": "def bigmeta(run):\n    run.metadata['x'] = [1]\n",
        },
    )
    unit = {"serial_number": "SN", "part_number": "PN", "sub_units": {"PSU": "PSU-1"}, "metadata": {}}

    async def body(s: Session):
        return [await s.run(k, unit=dict(unit)) for k in ("unitw", "newsub", "badmeta", "bigmeta")]

    unitw, newsub, badmeta, bigmeta = with_pool(folder, body)
    assert unitw.error is None, unitw.error
    assert messages(unitw) == ["PSU-1 PSU-1"]
    assert unitw.unit["sub_units"] == {"PSU": "PSU-2"}
    assert unitw.unit["revision_number"] == "B"
    assert unitw.unit["metadata"] == {"fw.version": "1.2"}
    assert unitw.run_metadata == {"attempts": 3, "ratio": 0.5}
    assert newsub.error is not None and "no sub-unit 'fan'" in newsub.error
    assert badmeta.error is not None and "'bad key!' is invalid" in badmeta.error
    assert bigmeta.error is not None and "must be a str, int, float or bool" in bigmeta.error


def test_process_state_persists_between_phases(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("setter", "getter"),
        {
            "phases/setter.py": "import builtins\n\ndef setter():\n    builtins._tofu_test_flag = 'kept'\n",
            "phases/getter.py": "import builtins\n\ndef getter(log):\n    log.info(builtins._tofu_test_flag)\n",
        },
    )
    _, getter = run_phases(folder, "setter", "getter")
    assert messages(getter) == ["kept"]


def test_attach_file_missing_is_an_error(make_procedure, tmp_path: Path) -> None:
    folder = make_procedure(
        yaml_for("att"), {"phases/att.py": "def att(attach):\n    attach.file('nope.csv')\n"}
    )
    (result,) = run_phases(folder, "att")
    assert result.error is not None and "nope.csv" in result.error


def test_plugs_by_key_ignoring_case(make_procedure, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tofu_tui.procedure import plughost

    folder = make_procedure(
        yaml_for("uses_plug"),
        {
            "plugs/dmm.py": """
            class Dmm:
                def __init__(self, offset=0):
                    self.offset = offset

                def read(self, channel):
                    return channel + self.offset
            """,
            "phases/uses_plug.py": """
            def uses_plug(dmm, measurements):
                measurements.volts = dmm.read(2)
            """,
        },
    )
    host = subprocess.Popen(
        [sys.executable, plughost.__file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    try:
        assert host.stdin is not None and host.stdout is not None
        spec = {
            "key": "DMM", "file": str(folder / "plugs" / "dmm.py"), "class": "Dmm",
            "directory": str(folder), "config": {"offset": 1},
            "log": str(tmp_path / "plug.log"), "socket": str(tmp_path / "dmm.sock"),
        }
        host.stdin.write(json.dumps(spec) + "\n")
        host.stdin.flush()
        hello = json.loads(host.stdout.readline())
        assert hello["ok"], hello

        async def body(s: Session):
            plugs = {"DMM": {"key": "DMM", "address": hello["address"]}}
            # twice on one worker: the first phase's proxy must not keep the plug busy
            return [await asyncio.wait_for(s.run("uses_plug", plugs=plugs), 20) for _ in range(2)]

        results = with_pool(folder, body)
    finally:
        host.kill()
        host.wait()
    for result in results:
        assert result.error is None, result.error
        assert result.measurements["volts"].value == 3.0


def test_a_phase_cannot_break_the_next_ones_capture(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("vandal", "forker", "after"),
        {
            "phases/vandal.py": """
            import io, logging, os, sys

            def vandal():
                sys.stdout = io.StringIO()
                logging.getLogger().handlers.clear()
                os.chdir("/")
            """,
            "phases/forker.py": """
            import os

            def forker(log):
                pid = os.fork()
                if pid:
                    os.waitpid(pid, 0)
                    log.info("parent")
                # the child returns here too: it must not answer in the parent's place
            """,
            "phases/after.py": """
            import logging, os

            def after():
                print("printed")
                logging.warning("logged")
                print(os.getcwd())
            """,
        },
    )
    _, forker, after = run_phases(folder, "vandal", "forker", "after")
    assert messages(forker) == ["parent"]
    assert messages(after) == ["printed", "logged", str(folder.resolve())]


def test_progress_bars_and_stream_api(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("bars"),
        {
            "phases/bars.py": """
            import io, sys

            def bars():
                sys.stdout.reconfigure(encoding="utf-8")
                assert isinstance(sys.stdout, io.TextIOBase) and not sys.stdout.isatty()
                for i in range(0, 101, 10):
                    sys.stderr.write(f"\\rprogress {i}%")
                sys.stderr.write("\\n")
                sys.stdout.write("windows line\\r\\n")
                sys.stdout.close()
                print("after close")
            """
        },
    )
    (result,) = run_phases(folder, "bars")
    assert result.error is None, result.error
    assert [(line.level, line.message) for line in result.logs] == [
        ("WARNING", "progress 100%"),
        ("INFO", "windows line"),
        ("INFO", "after close"),
    ]


def test_tight_loops_of_updates_are_coalesced(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("loop"),
        {
            "phases/loop.py": """
            def loop(measurements, ui, log):
                for i in range(100_000):
                    measurements.count = i
                    ui.progress = i
                log.info("done")
            """
        },
    )

    async def body(s: Session):
        return await s.run("loop"), s.events

    result, events = with_pool(folder, body)
    assert result.error is None
    assert result.measurements["count"].value == 99_999.0
    ui = [e for e in events if isinstance(e, LiveUiUpdate)]
    live = [e for e in events if isinstance(e, LiveMeasurement)]
    assert ui[-1].value == 99_999 and live[-1].record.value == 99_999.0
    assert len(ui) < 10_000 and len(live) < 10_000

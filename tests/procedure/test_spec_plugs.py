"""procedure-format §5 plug RPC rules a technician trips over, through the real CLI:
keyword arguments, results that are not JSON, attributes read as calls. The phase's
docstring points at the author's line, not at the engine's proxy."""

from __future__ import annotations

from tests.procedure.runhelp import UNIT, check_stream, payload, run_json

PLUG_YAML = (
    "name: Plugs\n"
    + UNIT
    + """execution: {workers: 1, on_first_failure: continue}
plugs:
  - {name: Dmm, python: "plugs/dmm.py:Dmm", config: {port: /dev/x}}
main:
  - {name: Keywords, python: phases.a:keywords, timeout: 10s}
  - {name: Not Json, python: phases.a:not_json, timeout: 10s}
  - {name: Attribute, python: phases.a:attribute, timeout: 10s}
  - {name: Tuple, python: phases.a:tuple_result, timeout: 10s}
"""
)

DMM = """
class Dmm:
    range_v = 20

    def __init__(self, port):
        self.port = port

    def read(self, channel=1):
        return channel * 1.5

    def raw(self):
        return b"bytes"

    def pair(self):
        return (1, 2)
"""

PHASES = """
def keywords(dmm):
    dmm.read(channel=2)


def not_json(dmm):
    dmm.raw()


def attribute(dmm, measurements):
    measurements.range_v = dmm.range_v()  # any attribute access is a call


def tuple_result(dmm, measurements):
    measurements.pair = dmm.pair()  # tuples come back as lists
"""


def test_plug_rpc_rules_and_clear_errors(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(PLUG_YAML, {"plugs/dmm.py": DMM, "phases/a.py": PHASES})
    proc, events = run_json(folder)
    assert proc.returncode == 3, proc.stderr
    check_stream(events)
    phases = {p["name"]: p for p in payload(events)["phases"]}
    keywords = phases["Keywords"]["docstring"]
    assert phases["Keywords"]["outcome"] == "ERROR" and "positional arguments only" in keywords
    not_json = phases["Not Json"]["docstring"]
    assert phases["Not Json"]["outcome"] == "ERROR" and "not JSON-serialisable" in not_json and "raw" in not_json
    for doc in (keywords, not_json):
        assert "phases/a.py" in doc and "plughost.py" not in doc and "worker.py" not in doc
    assert phases["Attribute"]["outcome"] == "PASS"
    assert phases["Attribute"]["measurements"][0]["measured_value"] == 20.0
    assert phases["Tuple"]["measurements"][0]["measured_value"] == [1, 2]


def test_plug_files_in_a_package_use_relative_imports(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Package Plugs\n"
        + UNIT
        + """plugs:
  - {name: Dmm, python: "plugs.dmm:Dmm"}
  - {name: Psu, python: "plugs/power/psu.py:Psu", scope: execution}
main:
  - {name: M, python: phases.a:go, timeout: 20s}
""",
        {
            "plugs/__init__.py": "",
            "plugs/base.py": "class Instrument:\n    def ping(self):\n        return type(self).__name__\n",
            "plugs/dmm.py": "from .base import Instrument\n\nclass Dmm(Instrument):\n    pass\n",
            "plugs/power/__init__.py": "",
            "plugs/power/psu.py": "from ..base import Instrument\n\nclass Psu(Instrument):\n    pass\n",
            "phases/a.py": "def go(dmm, psu, measurements):\n    measurements.names = [dmm.ping(), psu.ping()]\n",
        },
    )
    proc, events = run_json(folder)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-1500:]
    check_stream(events)
    (phase,) = payload(events)["phases"]
    assert phase["measurements"][0]["measured_value"] == ["Dmm", "Psu"]


def test_a_plug_a_phase_can_never_receive_is_warned_about(make_procedure) -> None:  # type: ignore[no-untyped-def]
    from tofu_tui.procedure.load import PHASE_BUILTINS, load_procedure
    from tofu_tui.procedure.worker import BUILTIN_NAMES

    assert PHASE_BUILTINS == BUILTIN_NAMES
    folder = make_procedure(
        """
        name: Shadowed
        plugs:
          - {name: Log, python: plugs/x.py:X}
          - {name: Calibrate, python: plugs/x.py:X}
          - {name: Scope, python: plugs/x.py:X}
        main: [{name: Calibrate}, {name: Measure}]
        """,
        {"plugs/x.py": "class X:\n    pass\n"},
    )
    warnings = [str(w).split("procedure.yaml:", 1)[1] for w in load_procedure(folder).warnings]
    assert len(warnings) == 2
    assert warnings[0].startswith("3: plugs[0].key: plug key 'log' is also the built-in `log` parameter")
    assert warnings[1].startswith("4: plugs[1].key: plug key 'calibrate' is also a phase key")

"""procedure-format §1 child environment and §4 phase API rules on real workers, for
the rules other tests leave open: PYTHONHOME removed, PYTHONIOENCODING, `log` without
`critical`, and the metadata limits checked at assignment."""

from __future__ import annotations

import pytest

from tests.procedure.poolkit import messages, run_phases, yaml_for
from tests.procedure.runhelp import UNIT, check_stream, payload, run_json

API = """
import os


def env(log):
    names = ("PYTHONHOME", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "WORKER_ID")
    log.info(" ".join(f"{name}={os.environ.get(name)}" for name in names))


def crit(log):
    log.critical("no such level")


def long_text(run):
    run.metadata["ok"] = "x" * 50_000
    run.metadata["s"] = "x" * 50_001


def not_finite(run):
    run.metadata["f"] = float("inf")


def too_many(unit):
    for i in range(51):
        unit.metadata[f"k{i}"] = i
"""


def test_child_environment_log_levels_and_metadata_limits(make_procedure, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        yaml_for(*(f"  - {{name: {k}, python: 'phases.api:{k}'}}" for k in ("env", "crit", "long_text", "not_finite", "too_many"))),
        {"phases/api.py": API},
    )
    # A worker that inherited this PYTHONHOME could not even start.
    monkeypatch.setenv("PYTHONHOME", "/nonexistent-python-home")
    monkeypatch.setenv("PYTHONIOENCODING", "latin-1")
    env, crit, long_text, not_finite, too_many = run_phases(folder, "env", "crit", "long_text", "not_finite", "too_many")
    assert env.error is None, env.error
    assert messages(env) == [
        "PYTHONHOME=None PYTHONPATH=None PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8 WORKER_ID=0"
    ]
    assert crit.error is not None and "critical" in crit.error  # debug/info/warning/error only
    assert long_text.error is not None and "longer than 50000 characters" in long_text.error
    assert long_text.run_metadata == {"ok": "x" * 50_000}  # data recorded before the failure is kept
    assert not_finite.error is not None and "finite" in not_finite.error
    assert too_many.error is not None and "at most 50 keys" in too_many.error
    assert len(too_many.unit["metadata"]) == 50


COPY_YAML = (
    "name: Copy\n"
    + UNIT
    + """main:
  - {name: First, python: phases.c:first}
  - {name: Second, python: phases.c:second, depends_on: [first]}
"""
)

COPY_PY = """
def first(measurements):
    measurements.s = "green"
    measurements.f = 2.5
    measurements.l = [1, 2]
    measurements.f.aggregations.max = 3


def second(first, measurements):
    # §4: an earlier phase's result reads like values; recording them again just works
    measurements.s = first.measurements.s
    measurements.f = first.measurements.f
    measurements.f.aggregations.max = first.measurements.f.aggregations.max
    measurements.l = first.measurements.l
    measurements.both = [first.measurements.s, first.measurements.f]
"""


def test_an_earlier_phases_measurements_can_be_recorded_again(make_procedure) -> None:  # type: ignore[no-untyped-def]
    proc, events = run_json(make_procedure(COPY_YAML, {"phases/c.py": COPY_PY}))
    assert proc.returncode == 0, proc.stderr
    check_stream(events)
    second = payload(events)["phases"][1]
    assert second["outcome"] == "PASS"
    measured = {m["name"]: m.get("measured_value") for m in second["measurements"]}
    assert measured == {"s": "green", "f": 2.5, "l": [1, 2], "both": ["green", 2.5]}
    (aggregation,) = next(m for m in second["measurements"] if m["name"] == "f")["aggregations"]
    assert (aggregation["type"], aggregation["value"]) == ("max", 3.0)

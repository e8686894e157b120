"""§10 payload rules on recorded attempts: phases, logs, metadata folding, unit fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tofu_tui.models.run import RunCreate
from tofu_tui.procedure.payload import (
    AttemptRecord,
    build_run,
    fold_metadata,
    payload_level,
    payload_source_file,
    resolve_procedure_id,
    run_dict,
)
from tofu_tui.procedure.pool import LogLine
from tofu_tui.procedure.schema import PhaseSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(name: str, seconds: int, **kwargs: object) -> AttemptRecord:
    return AttemptRecord(
        phase=PhaseSpec(name=name),
        slot="default",
        retry_count=kwargs.pop("retry_count", 0),  # type: ignore[arg-type]
        started_at=T0 + timedelta(seconds=seconds),
        ended_at=T0 + timedelta(seconds=seconds + 1),
        outcome=kwargs.pop("outcome", "PASS"),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def build(records: list[AttemptRecord], unit: dict[str, object] | None = None, **kwargs: object) -> RunCreate:
    return build_run(
        outcome="PASS",
        records=records,
        unit=unit or {},
        identify_metadata=kwargs.pop("identify_metadata", {}),  # type: ignore[arg-type]
        directory=Path("/bench/proc"),
        procedure_version=kwargs.pop("procedure_version", ""),  # type: ignore[arg-type]
        procedure_id=None,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=60),
        **kwargs,  # type: ignore[arg-type]
    )


def test_levels_and_source_files() -> None:
    assert [payload_level(x) for x in ("DEBUG", "WARNING", "ERROR", "CRITICAL", "INFO", "warning", "TRACE")] == [
        "DEBUG",
        "WARNING",
        "ERROR",
        "CRITICAL",
        "INFO",
        "INFO",
        "INFO",
    ]
    directory = Path("/bench/proc")
    assert payload_source_file("", directory) == "unknown"
    assert payload_source_file(None, directory) == "unknown"
    assert payload_source_file("/bench/proc/phases/a.py", directory) == "phases/a.py"
    assert payload_source_file("/elsewhere/lib.py", directory) == "/elsewhere/lib.py"
    long = "x/" * 150 + "end.py"
    assert payload_source_file(long, directory) == long[-200:]


def test_phases_logs_and_unit_fields() -> None:
    log = LogLine("WARNING", T0, "careful", "/bench/proc/phases/a.py", 7)
    odd = LogLine("NOTICE", T0, "odd", "", 0)
    run = build(
        [
            record("Second", 5, outcome="STOP"),
            record("First", 1, outcome="TIMEOUT", docstring="Phase timed out after 2 seconds", logs=[log, odd]),
            record("First", 3, retry_count=1, outcome="RETRY"),
        ],
        unit={
            "serial_number": "  ",
            "part_number": "PN",
            "revision_number": None,
            "batch_number": "B1",
            "sub_units": {"zeta": "Z", "alpha": "A", "empty": ""},
        },
        procedure_version="  3.1 ",
    )
    body = run_dict(run)
    assert body["serial_number"] == "UNKNOWN"
    assert body["part_number"] == "PN" and body["batch_number"] == "B1" and "revision_number" not in body
    assert body["sub_units"] == ["A", "Z"]
    assert body["procedure_version"] == "3.1"
    assert body["procedure_id"] is None
    assert [(p["name"], p["outcome"], p.get("retry_count")) for p in body["phases"]] == [
        ("First", "FAIL", None),
        ("First", "FAIL", 1),
        ("Second", "FAIL", None),
    ]
    assert body["phases"][0]["docstring"] == "Phase timed out after 2 seconds"
    assert all(p["measurements"] == [] for p in body["phases"])
    assert body["logs"] == [
        {"level": "WARNING", "timestamp": "2026-01-01T00:00:00Z", "message": "careful", "source_file": "phases/a.py", "line_number": 7},
        {"level": "INFO", "timestamp": "2026-01-01T00:00:00Z", "message": "odd", "source_file": "unknown", "line_number": 0},
    ]
    assert not {"metadata", "unit_metadata", "deployment_id", "execution_id", "slot_key"} & set(body)
    RunCreate.model_validate(body)  # the API model accepts it back


def test_empty_version_is_not_uploaded() -> None:
    assert "procedure_version" not in run_dict(build([record("A", 0)]))


def test_metadata_folding_later_attempt_replaces_in_place() -> None:
    run = build(
        [
            record("A", 0, run_metadata={"x": 1, "only_first": True}, unit_metadata={"fw": "1"}),
            record("B", 1, run_metadata={"x": 2, "y": "b"}),
            record("A", 2, retry_count=1, run_metadata={"x": 3}, unit_metadata={"fw": "2"}),
        ],
        identify_metadata={"fw": "0", "station": "s1"},
    )
    # A's map (replaced by its retry) stays in A's place, so B's x still wins
    assert run.metadata == {"x": 2, "y": "b"}
    assert run.unit_metadata == {"fw": "2", "station": "s1"}


def test_fold_keeps_first_50_sorted_keys_and_valid_values() -> None:
    maps = [{f"k{i:03d}": i for i in range(80)}, {"bad": [1, 2], "zzz": None}]
    folded = fold_metadata(maps)
    assert list(folded) == [f"k{i:03d}" for i in range(50)]


def test_slot_fields_only_for_slots() -> None:
    body = run_dict(build([record("A", 0)], execution_id="e-1", slot_key="left", slot_name="Left"))
    assert (body["execution_id"], body["slot_key"], body["slot_name"]) == ("e-1", "left", "Left")


def test_procedure_id_sources(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("TOFUPILOT_PROCEDURE_ID", raising=False)
    assert resolve_procedure_id(None, tmp_path) is None
    monkeypatch.setenv("TOFUPILOT_PROCEDURE_ID", "env-id")
    assert resolve_procedure_id(None, tmp_path) == "env-id"
    (tmp_path / "tofupilot.json").write_text('{"procedureId": "link-id"}')
    assert resolve_procedure_id(None, tmp_path) == "link-id"
    assert resolve_procedure_id("flag-id", tmp_path) == "flag-id"
    (tmp_path / "tofupilot.json").write_text("{broken")
    assert resolve_procedure_id(None, tmp_path) == "env-id"

"""§10: the run payload (`POST /v2/runs`) built from the recorded attempts of one slot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tofu_tui.models.run import Log, Measurement, Phase, RunCreate
from tofu_tui.procedure.outcomes import EngineOutcome, payload_phase_outcome

if TYPE_CHECKING:
    from tofu_tui.procedure.pool import AttachmentRecord, LogLine
    from tofu_tui.procedure.schema import PhaseSpec

MAX_METADATA_KEYS = 50
SOURCE_FILE_CHARS = 200
_LEVELS = {"DEBUG", "WARNING", "ERROR", "CRITICAL"}
UNIT_FIELDS = ("serial_number", "part_number", "revision_number", "batch_number")


@dataclass
class AttemptRecord:
    """One finished attempt, as the payload and the live view need it."""

    phase: PhaseSpec
    slot: str | None  # slot key; None for an execution-wide phase
    retry_count: int
    started_at: datetime
    ended_at: datetime
    outcome: EngineOutcome
    error: str | None = None
    docstring: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    run_metadata: dict[str, Any] = field(default_factory=dict)  # keys this attempt set
    unit_metadata: dict[str, Any] = field(default_factory=dict)  # keys this attempt changed

    @property
    def duration_ms(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() * 1000


def payload_level(level: str) -> str:
    return level if level in _LEVELS else "INFO"


def payload_source_file(source_file: str | None, directory: Path) -> str:
    if not source_file:
        return "unknown"
    path = source_file
    try:
        candidate = Path(source_file)
        if candidate.is_absolute():
            path = str(candidate.resolve().relative_to(directory.resolve()))
    except (ValueError, OSError):
        path = source_file
    return path[-SOURCE_FILE_CHARS:] or "unknown"


def payload_log(line: LogLine, directory: Path) -> Log:
    return Log(
        level=payload_level(line.level),  # type: ignore[arg-type]
        timestamp=line.timestamp,
        message=line.message,
        source_file=payload_source_file(line.source_file, directory),
        line_number=line.line_number if isinstance(line.line_number, int) and line.line_number > 0 else 0,
    )


def payload_phase(record: AttemptRecord) -> Phase:
    data: dict[str, Any] = {
        "name": record.phase.name,
        "outcome": payload_phase_outcome(record.outcome),
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "measurements": list(record.measurements),
    }
    if record.docstring:
        data["docstring"] = record.docstring
    if record.retry_count > 0:
        data["retry_count"] = record.retry_count
    return Phase(**data)


def _metadata_value(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def fold_metadata(maps: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Later keys win; at most 50 keys, the first 50 in sorted order."""
    folded: dict[str, Any] = {}
    for one in maps:
        for key, value in one.items():
            if isinstance(key, str) and _metadata_value(value):
                folded[key] = value
    return {key: folded[key] for key in sorted(folded)[:MAX_METADATA_KEYS]}


def per_phase_maps(records: list[AttemptRecord], attr: str) -> list[dict[str, Any]]:
    """One map per phase key; a later attempt replaces that phase's map in place."""
    maps: dict[str, dict[str, Any]] = {}
    for record in records:
        maps[record.phase.key] = dict(getattr(record, attr))
    return list(maps.values())


def resolve_procedure_id(explicit: str | None, directory: Path) -> str | None:
    """--procedure-id, else `tofupilot.json`'s `procedureId`, else TOFUPILOT_PROCEDURE_ID."""
    if explicit:
        return explicit
    link = directory / "tofupilot.json"
    if link.is_file():
        try:
            data = json.loads(link.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("procedureId"), str) and data["procedureId"]:
            return str(data["procedureId"])
    return os.environ.get("TOFUPILOT_PROCEDURE_ID") or None


def build_run(
    *,
    outcome: str,
    records: list[AttemptRecord],
    unit: dict[str, Any],
    identify_metadata: dict[str, Any],
    directory: Path,
    procedure_version: str,
    procedure_id: str | None,
    started_at: datetime,
    ended_at: datetime,
    deployment_id: str | None = None,
    execution_id: str | None = None,
    slot_key: str | None = None,
    slot_name: str | None = None,
    docstring: str | None = None,
) -> RunCreate:
    """The payload of one slot. `unit` is the unit as it stands at the end of the run (Q6)."""
    ordered = sorted(records, key=lambda r: r.started_at)
    data: dict[str, Any] = {
        "outcome": outcome,
        "procedure_id": procedure_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "serial_number": _text(unit.get("serial_number")) or "UNKNOWN",
        "phases": [payload_phase(r) for r in ordered],
        "logs": [payload_log(line, directory) for r in ordered for line in r.logs],
    }
    version = (procedure_version or "").strip()
    if version:
        data["procedure_version"] = version
    for name in UNIT_FIELDS[1:]:
        value = _text(unit.get(name))
        if value:
            data[name] = value
    sub_units = unit.get("sub_units") or {}
    if isinstance(sub_units, dict):
        serials = [_text(sub_units[k]) for k in sorted(sub_units)]
        serials = [s for s in serials if s]
        if serials:
            data["sub_units"] = serials
    metadata = fold_metadata(per_phase_maps(ordered, "run_metadata"))
    if metadata:
        data["metadata"] = metadata
    unit_metadata = fold_metadata([identify_metadata, *per_phase_maps(ordered, "unit_metadata")])
    if unit_metadata:
        data["unit_metadata"] = unit_metadata
    if deployment_id:
        data["deployment_id"] = deployment_id
    if docstring:
        data["docstring"] = docstring  # why the run failed outside any phase (a plug start)
    if execution_id and slot_key is not None:
        data["execution_id"] = execution_id
        data["slot_key"] = slot_key
        if slot_name:
            data["slot_name"] = slot_name
    return RunCreate(**data)


def run_dict(run: RunCreate) -> dict[str, Any]:
    """The JSON body: only the fields set (so `retry_count` etc. appear only when meaningful),
    with `procedure_id` always present (null for an unlinked local run)."""
    body: dict[str, Any] = run.model_dump(mode="json", exclude_unset=True)
    body.setdefault("procedure_id", None)
    return body


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None

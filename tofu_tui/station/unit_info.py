"""The `unit` section of a deployed procedure, as the station status carries it, so a
console can prefill its identify form, or skip it for `auto_identify`."""

from __future__ import annotations

import functools
from pathlib import Path

from tofu_tui.models.status import UnitInfo
from tofu_tui.procedure.load import ProcedureLoadError, find_procedure_file, parse_procedure_text
from tofu_tui.procedure.schema import UnitSpec


def to_unit_info(unit: UnitSpec | None) -> UnitInfo:
    if unit is None:
        return UnitInfo()
    data = unit.model_dump(mode="json")
    data["sub_units"] = data.get("sub_units") or []
    data["metadata"] = data.get("metadata") or {}
    return UnitInfo.model_validate(data)


# A deployment's checkout never changes, so one read per folder is enough (the status
# is asked for every few seconds).
@functools.lru_cache(maxsize=128)
def unit_info(directory: str) -> UnitInfo | None:
    """The unit section of the procedure in `directory`; None when it cannot be read
    (a run of it would be refused with the reason anyway)."""
    try:
        file = find_procedure_file(Path(directory))
        spec, _ = parse_procedure_text(file.read_text(encoding="utf-8"), str(file))
    except (ProcedureLoadError, OSError, UnicodeDecodeError):
        return None
    return to_unit_info(spec.unit)

"""The station status carries a deployed procedure's `unit` section (for the console's
identify form); a procedure that cannot be read gives None, never an error."""

from __future__ import annotations

from pathlib import Path

from tofu_tui.models.status import SubUnit, UnitField, UnitInfo
from tofu_tui.station.unit_info import unit_info

UNIT_YAML = """name: Radio board
unit:
  serial_number: {default_value: RB-0001, placeholder: RB-####, pattern: "^RB-"}
  part_number: {default_value: RB-100, max_length: 20}
  sub_units:
    - {label: Radio module, serial_number: {default_value: RM-1}}
  metadata:
    fixture: {default_value: FX-2}
main:
  - {name: Check, python: phases:check}
"""


def test_unit_section_of_a_procedure_folder(tmp_path: Path) -> None:
    (tmp_path / "procedure.yaml").write_text(UNIT_YAML)
    assert unit_info(str(tmp_path)) == UnitInfo(
        serial_number=UnitField(default_value="RB-0001", placeholder="RB-####", pattern="^RB-"),
        part_number=UnitField(default_value="RB-100", max_length=20),
        sub_units=[SubUnit(key="radio_module", label="Radio module", serial_number=UnitField(default_value="RM-1"))],
        metadata={"fixture": UnitField(default_value="FX-2")},
    )


def test_no_unit_section_is_empty_and_an_unreadable_procedure_is_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "procedure.yaml").write_text("name: Plain\nmain:\n  - {name: Check, python: phases:check}\n")
    assert unit_info(str(plain)) == UnitInfo()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "procedure.yaml").write_text("name: [unclosed\n")
    assert unit_info(str(broken)) is None
    assert unit_info(str(tmp_path / "missing")) is None

"""DESIGN.md's layering, enforced: a forbidden import anywhere fails the suite."""

from __future__ import annotations

from pathlib import Path

from tests.layering import check_tree

PACKAGE = Path(__file__).resolve().parents[1] / "tofu_tui"


def test_project_respects_layering() -> None:
    violations = check_tree(PACKAGE)
    assert not violations, "\n".join(map(str, violations))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "tofu_tui"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_engine_importing_textual_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"procedure/execute.py": "from textual.app import App\n"})
    [violation] = check_tree(root)
    assert violation.imported == "textual.app"
    assert violation.line == 1


def test_server_importing_station_relatively_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"server/app.py": "import os\nfrom ..station import queue\n"})
    [violation] = check_tree(root)
    assert violation.imported == "tofu_tui.station"
    assert violation.line == 2


def test_station_importing_tui_inside_function_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"station/daemon.py": "def f():\n    import tofu_tui.tui.app\n"})
    [violation] = check_tree(root)
    assert "tofu_tui.tui" in violation.rule


def test_worker_importing_third_party_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"procedure/worker/main.py": "import json, sys\nimport pydantic\nfrom tofu_tui import models\n"},
    )
    imported = sorted(v.imported for v in check_tree(root))
    assert imported == ["pydantic", "tofu_tui"]


def test_allowed_imports_pass(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "procedure/load.py": "from tofu_tui.models import run\nimport yaml\n",
            "tui/app.py": "import textual\nfrom tofu_tui.station import daemon\n",
        },
    )
    assert check_tree(root) == []


def test_worker_may_import_its_own_modules(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"procedure/worker/main.py": "from . import protocol\nimport json\n"})
    assert check_tree(root) == []

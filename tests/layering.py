"""The import rules of DESIGN.md, checked by reading every module's imports (AST)."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

# package (relative to tofu_tui/) -> tofu_tui subpackages and third-party roots it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "models": (
        "tofu_tui.procedure",
        "tofu_tui.station",
        "tofu_tui.server",
        "tofu_tui.tui",
        "tofu_tui.cli",
        "textual",
    ),
    "procedure": ("tofu_tui.station", "tofu_tui.server", "tofu_tui.tui", "tofu_tui.cli", "textual"),
    "station": ("tofu_tui.server", "tofu_tui.tui", "tofu_tui.cli", "textual"),
    "server": ("tofu_tui.station", "tofu_tui.tui", "tofu_tui.cli", "textual"),
}

# Modules that run inside a procedure's own interpreter: standard library only.
STDLIB_ONLY = ("procedure/worker", "procedure/plughost")


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported} ({self.rule})"


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def check_tree(root: Path) -> list[Violation]:
    """Check the package at `root` (a folder named tofu_tui) and return every violation."""
    violations: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        rel_posix = rel.as_posix()
        # Resolve relative imports against the dotted path from the package root.
        dotted_path = Path("tofu_tui", *rel.parts)
        for line, module in _imports_with_package(path, dotted_path):
            layer = rel.parts[0] if len(rel.parts) > 1 else None
            if layer in FORBIDDEN:
                for prefix in FORBIDDEN[layer]:
                    if _matches(module, prefix):
                        violations.append(Violation(path, line, module, f"{layer} must not import {prefix}"))
            if any(rel_posix.startswith(p + "/") or rel_posix == p + ".py" for p in STDLIB_ONLY):
                root_name = module.split(".")[0]
                own = any(_matches(module, "tofu_tui." + p.replace("/", ".")) for p in STDLIB_ONLY)
                if root_name and not own and root_name not in sys.stdlib_module_names and root_name != "__future__":
                    violations.append(Violation(path, line, module, "worker code is standard library only"))
    return violations


def _imports_with_package(path: Path, dotted_path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = list(dotted_path.with_suffix("").parts[:-1])
    if dotted_path.name == "__init__.py":
        package_parts = list(dotted_path.parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found

"""A deployment's Python environment: a venv built with uv from what the procedure
declares (requirements.txt, or pyproject.toml's dependencies), or the station's own
interpreter when it declares nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

INSTALL_TIMEOUT_S = 900.0


class EnvError(Exception):
    """The environment could not be built; the message says why."""


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise EnvError("uv is not installed: install it (pip install uv) to build procedure environments") from None
        return found


def declaration(procedure_dir: Path, root: Path) -> Path | None:
    """What the procedure declares (procedure-format.md §1): the nearest pyproject.toml,
    otherwise the nearest requirements.txt, from its folder up to the checkout's root."""
    for name in ("pyproject.toml", "requirements.txt"):
        folder = procedure_dir
        while True:
            candidate = folder / name
            if candidate.is_file():
                if name == "pyproject.toml":
                    try:
                        tomllib.loads(candidate.read_text(encoding="utf-8"))
                    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                        raise EnvError(f"{candidate.relative_to(root)} is not valid TOML: {exc}") from None
                return candidate
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return None


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def prepare(procedure_dir: Path, root: Path) -> str:
    """Build the environment; returns the interpreter the procedure runs with."""
    declared = declaration(procedure_dir, root)
    if declared is None:
        return sys.executable
    venv = declared.parent / ".venv"
    uv = uv_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOFU_TUI_")}
    env.pop("VIRTUAL_ENV", None)
    # A venv left by an earlier try (a failed install, another deployment of this commit
    # with its own subfolder) is rebuilt: uv 0.8+ refuses to replace one otherwise.
    env["UV_VENV_CLEAR"] = "1"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], declared.parent, env, "creating the venv")
    if declared.name == "pyproject.toml" and "project" not in tomllib.loads(declared.read_text(encoding="utf-8")):
        return str(venv_python(venv))  # tool settings only: an empty environment
    _run([uv, "pip", "install", "--quiet", "--python", str(venv_python(venv)), "-r", declared.name],
         declared.parent, env, f"installing {declared.relative_to(root)}")
    return str(venv_python(venv))


def _run(args: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EnvError(f"{what} took more than {INSTALL_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise EnvError(f"{what} failed: {detail}")

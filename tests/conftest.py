"""Shared fixtures: run the real `tofu-tui` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.station.realserver import RealServer

REPO_ROOT = Path(__file__).resolve().parents[1]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child `tofu-tui`: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("TOFU_TUI_TOKEN", None)
    if extra:
        env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m tofu_tui ARGS` to completion and return its result."""
    return subprocess.run(
        [sys.executable, "-m", "tofu_tui", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


@pytest.fixture
def tofu() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


def pin_interpreter(directory: Path) -> Path:
    """Give procedures under `directory` this interpreter through the §1 upward walk: a
    `.venv` there that is (or points at) the running Python. Tests then never depend on
    a stray `venv`/`.venv` above the temporary folder, nor on what `uv python find` picks."""
    venv = directory / ".venv"
    if venv.exists() or venv.is_symlink():
        return venv
    if sys.prefix != sys.base_prefix:
        venv.symlink_to(sys.prefix, target_is_directory=True)  # keeps the venv's site-packages
    else:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
    return venv


@pytest.fixture(scope="session", autouse=True)
def _hermetic_interpreter(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Every tmp_path lives two levels under the base temp folder, within the walk's reach.
    pin_interpreter(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The parsed-procedure cache and the per-user config (e.g. the admin commands' current
    # server) of this test session, not the user's; child processes inherit them.
    os.environ["TOFU_TUI_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cache")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.getbasetemp() / "xdg-config")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RealServer]:
    """The real local dashboard server, in a thread on a free loopback port."""
    from tests.station.realserver import RealServer

    s = RealServer.in_thread(tmp_path / "server")
    try:
        yield s
    finally:
        s.close()

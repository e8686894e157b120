"""install.sh, run for real in a temporary HOME and prefix.

The failure cases stop before anything is downloaded, so they are fast; the one slow
test installs `--from` this checkout (its dependencies come from the package index, or
pip's cache), upgrades in place and enrolls against the real local server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

INSTALL_SH = REPO_ROOT / "install.sh"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOFU_TUI_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    # Reuse the real user's pip cache: the temporary HOME must not force a cold download.
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env["HOME"] = str(tmp_path / "home")
    env["TOFU_TUI_HOME"] = str(tmp_path / "station")
    env["TMPDIR"] = str(tmp_path)
    env.update(extra)
    return env


def _install(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("sh") or "/bin/sh", str(INSTALL_SH), "--prefix", str(tmp_path / "prefix"), "--bin-dir", str(tmp_path / "bin"), *args],
        capture_output=True,
        text=True,
        env=env or _env(tmp_path),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_nothing_installed(tmp_path: Path) -> None:
    assert not (tmp_path / "prefix").exists()
    assert not (tmp_path / "bin" / "tofu-tui").exists()
    assert not (tmp_path / "bin" / "tofu-tui").is_symlink()


def test_help_and_usage_errors(tmp_path: Path) -> None:
    result = _install(tmp_path, "--help")
    assert result.returncode == 0
    assert "--token TOKEN" in result.stdout
    result = _install(tmp_path, "--frobnicate")
    assert result.returncode == 2
    assert "unknown option: --frobnicate" in result.stderr
    result = _install(tmp_path, "--token")
    assert result.returncode == 2
    assert "--token needs a value" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed here (Debian: apt-get install shellcheck)")
    result = subprocess.run([shellcheck, "-s", "sh", str(INSTALL_SH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_no_python_found_says_how_to_get_one(tmp_path: Path) -> None:
    # A PATH with the tools the script needs before it looks for Python, but no Python.
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("id", "uname", "mkdir", "date", "rm", "mktemp"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    result = _install(tmp_path, "--no-service", env=_env(tmp_path, PATH=str(tools)))
    assert result.returncode == 1
    assert "No Python 3.11 or newer found" in result.stderr
    assert "apt-get install python3" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_too_old_python_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.18'\nexit 1\n")
    old.chmod(0o755)
    result = _install(tmp_path, "--no-service", "--python", str(old))
    assert result.returncode == 1
    assert "Python 3.9.18" in result.stderr
    assert "needs Python 3.11 or newer" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_unreachable_server_fails_before_changing_anything(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                      "--token", "x" * 64, "--url", url)
    assert result.returncode == 1
    assert f"cannot reach the server at {url}" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_unreachable_package_index_is_named_and_rolled_back(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        PIP_INDEX_URL=f"http://127.0.0.1:{_closed_port()}/simple",
        PIP_CONFIG_FILE=os.devnull,  # no extra indexes from the machine's pip config
        PIP_FIND_LINKS="",
        PIP_NO_CACHE_DIR="1",
        PIP_RETRIES="1",
        PIP_TIMEOUT="3",
    )
    del env["PIP_CACHE_DIR"]
    result = _install(tmp_path, "--no-service", "--python", sys.executable, env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot reach the package index" in result.stderr
    assert "Nothing was changed" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_service_without_systemd_is_refused_up_front(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux") or Path("/run/systemd/system").is_dir():
        pytest.skip("needs a Linux machine where systemd is not running")
    result = _install(tmp_path, "--python", sys.executable, "--from", str(REPO_ROOT))
    assert result.returncode == 1
    assert "does not run systemd" in result.stderr
    assert "--no-service" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_bad_from_and_foreign_bin_file(tmp_path: Path) -> None:
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tofu-tui").write_text("someone else's")
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT))
    assert result.returncode == 1
    assert "is not a link made by this installer" in result.stderr
    assert (tmp_path / "bin" / "tofu-tui").read_text() == "someone else's"
    assert not (tmp_path / "prefix").exists()


@pytest.mark.slow
def test_install_upgrade_and_enroll(tmp_path: Path) -> None:
    """The only slow test: one real install from this checkout, then an upgrade."""
    env = _env(tmp_path)
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                      env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    link = tmp_path / "bin" / "tofu-tui"
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0, version.stderr
    assert "tofu-tui, version" in version.stdout
    # Its own environment, not this test's: the program runs the installed venv's Python.
    current = (tmp_path / "prefix" / "current").resolve()
    assert (current / "bin" / "python").exists()
    assert str(current) not in sys.prefix

    # Upgrade: a new environment replaces the old one; the station's data is untouched.
    marker = tmp_path / "station" / "data" / "marker"
    marker.parent.mkdir(parents=True)
    marker.write_text("keep me")
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                      env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    upgraded = (tmp_path / "prefix" / "current").resolve()
    assert upgraded != current
    assert not current.exists()
    assert [p.name for p in (tmp_path / "prefix" / "venvs").iterdir()] == [upgraded.name]
    assert marker.read_text() == "keep me"
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0, version.stderr

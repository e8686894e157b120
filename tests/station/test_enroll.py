"""Enrollment: `tofu-tui login/whoami/logout` against a real HTTP server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.station.fakeserver import FakeServer
from tofu_tui.station.config import load_config, load_credentials
from tofu_tui.station.paths import station_paths


def test_login_with_env_token_writes_config_and_private_credentials(fake: FakeServer, home: Path) -> None:
    token = fake.state.new_token()
    result = run_cli(["login", "--url", fake.url], env={"TOFU_TUI_HOME": str(home), "TOFU_TUI_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert "bench-1" in result.stdout
    paths = station_paths(home)
    config = load_config(paths)
    assert config.station_id == "st_1" and config.server_url == fake.url and config.installation_id
    key = load_credentials(paths).api_key.get_secret_value()
    assert key in fake.state.keys
    assert stat.S_IMODE(os.stat(paths.credentials_toml).st_mode) == 0o600
    assert key not in paths.station_toml.read_text() and key not in result.stdout + result.stderr

    who = run_cli(["whoami"], env={"TOFU_TUI_HOME": str(home)})
    assert who.returncode == 0 and "valid" in who.stdout and "bench-1" in who.stdout

    fake.state.keys.clear()  # the dashboard revoked the key
    revoked = run_cli(["whoami"], env={"TOFU_TUI_HOME": str(home)})
    assert revoked.returncode == 1 and "revoked" in revoked.stdout

    out = run_cli(["logout"], env={"TOFU_TUI_HOME": str(home)})
    assert out.returncode == 0 and not paths.credentials_toml.exists()
    after = run_cli(["whoami"], env={"TOFU_TUI_HOME": str(home)})
    assert after.returncode == 1 and "tofu-tui login" in after.stderr


@pytest.mark.parametrize(("state", "words"), [
    ("expired", "expired"), ("used", "already used"), (None, "does not know")])
def test_bad_tokens_say_to_generate_a_new_one(fake: FakeServer, home: Path, state: str | None, words: str) -> None:
    token = fake.state.new_token(state) if state else "0" * 64
    result = run_cli(["login", "--url", fake.url, "--token", token], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 1
    assert words in result.stderr and "Generate a new setup token from the dashboard" in result.stderr
    assert not station_paths(home).credentials_toml.exists()


def test_unreachable_server_and_missing_token(home: Path) -> None:
    from tests.station.fakeserver import free_port

    result = run_cli(["login", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x" * 64],
                     env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 1 and "cannot reach" in result.stderr
    missing = run_cli(["login", "--url", "http://127.0.0.1:1"], env={"TOFU_TUI_HOME": str(home)})
    assert missing.returncode == 2 and "TOFU_TUI_TOKEN" in missing.stderr


def test_second_login_replaces_key_and_keeps_installation(fake: FakeServer, home: Path) -> None:
    env = {"TOFU_TUI_HOME": str(home)}
    assert run_cli(["login", "--url", fake.url, "--token", fake.state.new_token()], env=env).returncode == 0
    first = load_credentials(station_paths(home)).api_key.get_secret_value()
    assert run_cli(["login", "--token", fake.state.new_token()], env=env).returncode == 0  # URL remembered
    second = load_credentials(station_paths(home)).api_key.get_secret_value()
    assert first != second and fake.state.keys == {second}


def test_control_socket_folder_ignores_xdg_runtime_dir(tmp_path: Path) -> None:
    """A system service has no $XDG_RUNTIME_DIR and an SSH login has one: both must
    find the daemon's control socket in the same place."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    code = "from tofu_tui.station.paths import station_paths; print(station_paths().control_socket)"
    base = {k: v for k, v in cli_env().items() if k not in ("TOFU_TUI_HOME", "XDG_RUNTIME_DIR")}
    base["XDG_DATA_HOME"] = str(tmp_path / "d")
    service = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True)
    login = subprocess.run([sys.executable, "-c", code], env={**base, "XDG_RUNTIME_DIR": str(tmp_path / "rt")},
                           capture_output=True, text=True, check=True)
    assert service.stdout == login.stdout
    assert str(tmp_path / "rt") not in login.stdout

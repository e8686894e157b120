"""`tofu-tui service …` and `tofu-tui uninstall` as a user runs them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tofu_tui.station import service as svc
from tofu_tui.station.paths import station_paths

SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()


def _manager_path() -> Path:
    return svc.SystemdManager(system=svc.is_root()).path


@pytest.mark.skipif(SYSTEMD_RUNNING, reason="systemd runs here; never touch the machine's services")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux service manager")
def test_service_install_without_systemd_says_so_and_writes_nothing(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TOFU_TUI_HOME": str(tmp_path / "home")}
    existed = _manager_path().exists()
    result = run_cli(["service", "install"], env=env)
    assert result.returncode == 1
    assert "The service was not installed" in result.stderr
    assert "--no-service" in result.stderr or "not found" in result.stderr
    assert not (tmp_path / "cfg" / "systemd").exists()
    assert _manager_path().exists() == existed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux service manager")
def test_service_install_without_systemctl_names_the_missing_tool(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_cli(["service", "install"], env={"PATH": str(empty)})
    assert result.returncode == 1
    assert "`systemctl` was not found" in result.stderr


def test_service_install_rejects_a_missing_executable(tmp_path: Path) -> None:
    result = run_cli(["service", "install", "--executable", str(tmp_path / "nope")])
    assert result.returncode == 2
    assert "not an executable file" in result.stderr


@pytest.mark.skipif(SYSTEMD_RUNNING, reason="systemd runs here; never touch the machine's services")
def test_service_status_when_not_installed() -> None:
    if _manager_path().exists():
        pytest.skip("a tofu-tui unit is installed on this machine")
    result = run_cli(["service", "status"])
    assert result.returncode == 3
    assert "not installed" in result.stdout


def _station_home(root: Path) -> Path:
    """A station's folders under TOFU_TUI_HOME=root, as the station lays them out."""
    paths = station_paths(root).ensure()
    paths.station_toml.write_text('server_url = "http://127.0.0.1:1"\n')
    paths.credentials_toml.write_text('api_key = "secret"\n')
    paths.state_db.write_bytes(b"queue")
    (paths.deployments / "proc" / "abc").mkdir(parents=True)
    (paths.deployments / "proc" / "abc" / "procedure.yaml").write_text("name: x\n")
    paths.logs.mkdir()
    return root


def test_uninstall_refuses_without_yes_when_not_a_terminal(tmp_path: Path) -> None:
    home = _station_home(tmp_path / "home")
    result = run_cli(["uninstall"], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 2
    assert "--yes" in result.stderr
    paths = station_paths(home)
    assert paths.credentials_toml.exists()
    assert paths.state_db.exists()


def test_uninstall_removes_config_and_data_but_not_foreign_files(tmp_path: Path) -> None:
    home = _station_home(tmp_path / "home")
    (home / "notes.txt").write_text("mine")
    result = run_cli(["uninstall", "--yes"], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    assert "holds files tofu-tui did not make" in result.stdout


def test_uninstall_keep_data_keeps_queue_and_deployments(tmp_path: Path) -> None:
    home = _station_home(tmp_path / "home")
    result = run_cli(["uninstall", "--yes", "--keep-data"], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    paths = station_paths(home)
    assert not paths.credentials_toml.exists()
    assert not paths.station_toml.exists()
    assert paths.state_db.read_bytes() == b"queue"
    assert (paths.deployments / "proc" / "abc" / "procedure.yaml").exists()
    assert "holds files" not in result.stdout


def test_uninstall_removes_the_platform_folders_whole(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("XDG folders are Linux's")
    config = tmp_path / "xdg-config" / "tofu-tui"
    data = tmp_path / "xdg-data" / "tofu-tui"
    config.mkdir(parents=True)
    (config / "credentials.toml").write_text("k")
    data.mkdir(parents=True)
    (data / "state.db").write_text("q")
    (data / "anything-else").write_text("x")
    runtime = data / "run"  # the control socket's folder
    runtime.mkdir(mode=0o700)
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg-runtime"),
        "TOFU_TUI_HOME": "",
    }
    result = run_cli(["uninstall", "--yes"], env=env)
    assert result.returncode == 0, result.stderr
    assert not config.exists()
    assert not data.exists()
    assert not runtime.exists()


def test_uninstall_with_nothing_there(tmp_path: Path) -> None:
    result = run_cli(["uninstall", "--yes"], env={"TOFU_TUI_HOME": str(tmp_path / "empty")})
    assert result.returncode == 0
    assert "Nothing to remove" in result.stdout


def test_uninstall_refuses_while_a_daemon_holds_the_station(tmp_path: Path) -> None:
    from filelock import FileLock

    home = _station_home(tmp_path / "home")
    paths = station_paths(home)
    with FileLock(str(paths.daemon_lock)):
        result = run_cli(["uninstall", "--yes"], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 1
    assert "still running" in result.stderr
    assert paths.credentials_toml.exists()
    assert paths.state_db.read_bytes() == b"queue"


def test_uninstall_says_how_many_runs_are_not_uploaded_yet(tmp_path: Path) -> None:
    from tofu_tui.station.queue import UploadQueue

    home = _station_home(tmp_path / "home")
    paths = station_paths(home)
    paths.state_db.unlink()
    queue = UploadQueue(paths, "inst")
    for serial in ("SN1", "SN2"):
        queue.enqueue({"outcome": "PASS", "serial_number": serial})
    queue.close()
    result = run_cli(["uninstall"], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 2  # not a terminal, no --yes: nothing removed
    assert "including 2 runs not uploaded yet" in result.stdout and "queue export" in result.stdout
    kept = run_cli(["uninstall", "--keep-data"], env={"TOFU_TUI_HOME": str(home)})
    assert "not uploaded" not in kept.stdout  # kept: nothing to warn about

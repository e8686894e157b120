"""The service managers driving the platform's tool. systemd cannot run in this
container, so a stand-in `systemctl` program (a shell script on PATH that records its
arguments and fails on request) plays the tool; the unit files are real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tofu_tui.station import service as svc

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "{log}"
for arg in "$@"; do
  if [ "$arg" = "$SYSTEMCTL_FAIL_ON" ]; then
    echo "Job for tofu-tui.service failed because the control process exited with error code." >&2
    exit 1
  fi
done
if [ "$2" = is-system-running ] && [ -n "$SYSTEMCTL_NO_BUS" ]; then
  echo "Failed to connect to bus: No medium found" >&2
  exit 1
fi
exit 0
"""


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[svc.SystemdManager, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    tool = bin_dir / "systemctl"
    tool.write_text(FAKE_SYSTEMCTL.format(log=log))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("SYSTEMCTL_FAIL_ON", raising=False)
    monkeypatch.delenv("SYSTEMCTL_NO_BUS", raising=False)
    booted = tmp_path / "run-systemd-system"
    booted.mkdir()
    manager = svc.SystemdManager(system=False, unit_dir=tmp_path / "units")
    monkeypatch.setattr(manager, "booted_marker", booted)
    return manager, log


SPEC = svc.ServiceSpec(command=("/opt/tofu-tui/current/bin/tofu-tui", "--headless"), home="/srv/bench")


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_install_writes_the_unit_enables_and_restarts(systemd: tuple[svc.SystemdManager, Path]) -> None:
    manager, log = systemd
    hints = manager.install(SPEC)
    assert manager.path.read_text() == svc.systemd_unit(SPEC)
    assert [c for c in _calls(log) if "is-system-running" not in c] == [
        "--user daemon-reload",
        "--user enable tofu-tui.service",
        # restart, so an upgrade runs the new program
        "--user restart tofu-tui.service",
    ]
    assert any("enable-linger" in hint for hint in hints)
    assert any("journalctl --user -u tofu-tui" in hint for hint in hints)


def test_a_failed_start_removes_the_new_unit(systemd: tuple[svc.SystemdManager, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    manager, log = systemd
    monkeypatch.setenv("SYSTEMCTL_FAIL_ON", "restart")
    with pytest.raises(svc.ServiceError, match="control process exited with error code"):
        manager.install(SPEC)
    assert not manager.path.exists()
    assert _calls(log)[-1] == "--user daemon-reload"


def test_a_failed_upgrade_puts_the_previous_unit_back(systemd: tuple[svc.SystemdManager, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _log = systemd
    manager.install(SPEC)
    before = manager.path.read_text()
    monkeypatch.setenv("SYSTEMCTL_FAIL_ON", "restart")
    with pytest.raises(svc.ServiceError):
        manager.install(svc.ServiceSpec(command=("/elsewhere/tofu-tui", "--headless")))
    assert manager.path.read_text() == before


def test_no_user_session_bus_is_explained_and_writes_nothing(systemd: tuple[svc.SystemdManager, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _log = systemd
    monkeypatch.setenv("SYSTEMCTL_NO_BUS", "1")
    with pytest.raises(svc.ServiceError, match="Cannot reach your systemd user manager"):
        manager.install(SPEC)
    assert not manager.path.exists()


def test_uninstall_disables_and_removes(systemd: tuple[svc.SystemdManager, Path]) -> None:
    manager, log = systemd
    manager.install(SPEC)
    manager.uninstall()
    assert not manager.path.exists()
    assert "--user disable --now tofu-tui.service" in _calls(log)


def test_status_and_start_when_not_installed(systemd: tuple[svc.SystemdManager, Path]) -> None:
    manager, _log = systemd
    assert manager.status().installed is False
    with pytest.raises(svc.ServiceError, match="tofu-tui service install"):
        manager.start()


@pytest.mark.parametrize(("platform", "tool"), [("darwin", "launchctl"), ("win32", "schtasks")])
def test_missing_platform_tool_is_named(platform: str, tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    manager = svc.manager_for_platform(platform)
    with pytest.raises(svc.ServiceError, match=f"`{tool}` was not found"):
        manager.install(SPEC)
    assert not manager.path.exists()


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(svc.ServiceError, match="no service support"):
        svc.manager_for_platform("aix")

"""The service definitions tofu-tui generates, checked the way each platform reads them:
the systemd unit with `systemd-analyze verify`, the launchd job with plistlib, the
Windows task with an XML parser."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tofu_tui.station import service as svc

NS = {"t": svc.TASK_NS}


def _fake_program(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "tofu-tui"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    return program


def _verify(unit_text: str, tmp_path: Path, *, user: bool) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit's content is asserted elsewhere")
    unit = tmp_path / "units" / "tofu-tui.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_text)
    env = dict(os.environ)
    args = [analyze]
    if not user:
        return subprocess.run([*args, "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60)
    # A short runtime folder: systemd also parses the machine's own user units, whose
    # socket paths under it must fit a Unix socket name (deep pytest folders do not).
    with tempfile.TemporaryDirectory(prefix="rt", dir="/tmp") as runtime:
        os.chmod(runtime, 0o700)
        env["XDG_RUNTIME_DIR"] = runtime
        return subprocess.run(
            [*args, "--user", "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60
        )


def _unit_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("system", [False, True], ids=["user-unit", "system-unit"])
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path, system: bool) -> None:
    program = _fake_program(tmp_path / "bench one" / "bin")
    spec = svc.ServiceSpec(
        command=(str(program), "--headless"), home=str(tmp_path / "home 50%"), system=system
    )
    result = _verify(svc.systemd_unit(spec), tmp_path, user=not system)
    assert result.returncode == 0, result.stderr
    # verify only warns (exit 0) about unknown keys and unparsable values: no warning allowed.
    assert result.stderr.strip() == "", result.stderr


def test_systemd_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """Guards the check above: a unit pointing at a missing program is rejected."""
    spec = svc.ServiceSpec(command=(str(tmp_path / "missing" / "tofu-tui"), "--headless"))
    result = _verify(svc.systemd_unit(spec), tmp_path, user=True)
    assert result.returncode != 0
    assert "not executable" in result.stderr


def test_systemd_unit_supervises_the_daemon_as_the_station_needs() -> None:
    spec = svc.ServiceSpec(
        command=("/opt/tofu-tui/current/bin/tofu-tui", "--headless"),
        home="/srv/bench 1/tofu%",
        stop_timeout_s=1200,
    )
    lines = _unit_lines(svc.systemd_unit(spec))
    assert "ExecStart=/opt/tofu-tui/current/bin/tofu-tui --headless" in lines
    assert "Restart=on-failure" in lines
    assert "RestartPreventExitStatus=75" in lines
    assert "KillSignal=SIGTERM" in lines
    # Only the daemon gets the first SIGTERM; the run's processes are left to finish.
    assert "KillMode=mixed" in lines
    assert "TimeoutStopSec=1200" in lines
    assert "StandardOutput=journal" in lines
    assert 'Environment="TOFU_TUI_HOME=/srv/bench 1/tofu%%"' in lines
    assert "WantedBy=default.target" in lines
    assert not any(line.startswith("User=") for line in lines)


def test_system_unit_starts_at_boot_and_default_stop_timeout_is_long() -> None:
    lines = _unit_lines(svc.systemd_unit(svc.ServiceSpec(command=("/x/tofu-tui", "--headless"), system=True)))
    assert "WantedBy=multi-user.target" in lines
    assert f"TimeoutStopSec={svc.DEFAULT_STOP_TIMEOUT_S}" in lines
    assert svc.DEFAULT_STOP_TIMEOUT_S >= 15 * 60
    assert not any(line.startswith("Environment=\"TOFU_TUI_HOME") or "TOFU_TUI_HOME" in line for line in lines)


def test_launchd_job_parses_and_restarts_on_crash(tmp_path: Path) -> None:
    spec = svc.ServiceSpec(
        command=("/Users/op/.local/share/tofu-tui/current/bin/tofu-tui", "--headless"),
        home="/Users/op/bench",
        log_dir=tmp_path / "logs",
    )
    job = plistlib.loads(svc.launchd_plist(spec))
    assert job["Label"] == svc.LAUNCHD_LABEL
    assert job["ProgramArguments"] == list(spec.command)
    assert job["EnvironmentVariables"]["TOFU_TUI_HOME"] == "/Users/op/bench"
    assert job["RunAtLoad"] is True
    # Restarted after a crash (non-zero exit), never after a clean stop (0)...
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    # ...and a revoked key exits 0 under launchd, which cannot exempt status 75.
    assert job["EnvironmentVariables"][svc.REVOKED_EXIT_ENV] == "0"
    assert job["ExitTimeOut"] == svc.DEFAULT_STOP_TIMEOUT_S
    assert job["StandardOutPath"] == str(tmp_path / "logs" / "daemon.log")


def _task(spec: svc.ServiceSpec) -> ET.Element:
    # Task Scheduler reads the file as UTF-16: round-trip through that encoding.
    return ET.fromstring(svc.windows_task_xml(spec).encode("utf-16"))


def test_windows_task_runs_at_boot_without_a_logged_in_user() -> None:
    exe = r"C:\Users\op\AppData\Local\tofu-tui\current\Scripts\tofu-tui.exe"
    root = _task(svc.ServiceSpec(command=(exe, "--headless"), user=r"BENCH\op"))
    assert root.tag == f"{{{svc.TASK_NS}}}Task"
    assert root.find("t:Triggers/t:BootTrigger/t:Enabled", NS).text == "true"  # type: ignore[union-attr]
    principal = root.find("t:Principals/t:Principal", NS)
    assert principal is not None
    assert principal.findtext("t:UserId", namespaces=NS) == r"BENCH\op"
    # S4U: runs whether or not the user is logged on, without storing a password.
    assert principal.findtext("t:LogonType", namespaces=NS) == "S4U"
    settings = root.find("t:Settings", NS)
    assert settings is not None
    assert settings.findtext("t:ExecutionTimeLimit", namespaces=NS) == "PT0S"
    assert settings.findtext("t:DisallowStartIfOnBatteries", namespaces=NS) == "false"
    assert settings.findtext("t:RestartOnFailure/t:Interval", namespaces=NS) == "PT1M"
    # The schema's Count is an unsignedByte: Task Scheduler refuses a task above 255.
    count = int(settings.findtext("t:RestartOnFailure/t:Count", namespaces=NS) or "0")
    assert 1 <= count <= 255
    exec_el = root.find("t:Actions/t:Exec", NS)
    assert exec_el is not None
    # The program itself, no cmd.exe in between (ending the task ends the daemon). Exit 75
    # needs no exemption here: RestartOnFailure retries failed starts, not exit statuses.
    assert exec_el.findtext("t:Command", namespaces=NS) == exe
    assert exec_el.findtext("t:Arguments", namespaces=NS) == "--headless"
    assert svc.REVOKED_EXIT_ENV not in svc.windows_task_xml(svc.ServiceSpec(command=(exe, "--headless")))
    assert exec_el.findtext("t:WorkingDirectory", namespaces=NS) == exe.rsplit("\\", 1)[0]


@pytest.mark.parametrize("exemption, expected", [(None, 75), ("0", 0)], ids=["systemd", "launchd"])
def test_revoked_daemon_exits_with_the_status_its_service_does_not_restart(
    tmp_path: Path, exemption: str | None, expected: int
) -> None:
    """The real daemon, not enrolled (the same exit path as a revoked key): 75 for
    systemd's RestartPreventExitStatus, 0 under the launchd job (which sets the variable)."""
    from tests.conftest import cli_env

    env = cli_env({"TOFU_TUI_HOME": str(tmp_path / "station")})
    env.pop(svc.REVOKED_EXIT_ENV, None)
    if exemption is not None:
        env[svc.REVOKED_EXIT_ENV] = exemption
    daemon = subprocess.run([sys.executable, "-m", "tofu_tui", "--headless"], capture_output=True, text=True,
                            env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert daemon.returncode == expected, daemon.stderr
    assert "tofu-tui login" in daemon.stdout


def test_windows_task_carries_tofu_tui_home_through_cmd() -> None:
    exe = r"C:\Program Files\tofu-tui\Scripts\tofu-tui.exe"
    root = _task(svc.ServiceSpec(command=(exe, "--headless"), home=r"D:\bench 2"))
    exec_el = root.find("t:Actions/t:Exec", NS)
    assert exec_el is not None
    assert exec_el.findtext("t:Command", namespaces=NS) == "cmd.exe"
    args = exec_el.findtext("t:Arguments", namespaces=NS) or ""
    assert 'set "TOFU_TUI_HOME=D:\\bench 2"' in args
    assert f'"{exe}" --headless' in args
    # No user given: the task runs as SYSTEM.
    assert root.findtext("t:Principals/t:Principal/t:UserId", namespaces=NS) == "S-1-5-18"


def test_daemon_command_prefers_the_given_program_unresolved(tmp_path: Path) -> None:
    program = _fake_program(tmp_path / "venvs" / "1" / "bin")
    link = tmp_path / "current"
    link.symlink_to(program.parent.parent)
    command = svc.daemon_command(str(link / "bin" / "tofu-tui"))
    # The stable link, not the versioned folder: upgrades swap the link under the service.
    assert command == (str(link / "bin" / "tofu-tui"), "--headless")


def test_daemon_command_falls_back_to_this_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/pytest"])
    command = svc.daemon_command()
    assert command[-1] == "--headless"
    assert Path(command[0]).exists()

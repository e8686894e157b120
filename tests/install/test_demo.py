"""`tofu-tui demo --headless`: the whole system on one machine, and nothing left
running afterwards."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import cli_env, run_cli


def _leftovers(root: str) -> list[str]:
    """Processes whose command line mentions the demo's folder."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if root in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def _server_down(url: str) -> bool:
    try:
        httpx.get(f"{url}/api/health", timeout=2)
    except httpx.HTTPError:
        return True
    return False


def test_demo_headless_three_runs_reach_the_server_and_nothing_stays() -> None:
    result = run_cli(["demo", "--headless", "--runs", "3", "--run-timeout", "60"], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 runs reached the server" in result.stdout
    serials = re.findall(r"^\s+(DEMO-\d{3})\s+PASS\s", result.stdout, re.M)
    assert serials == ["DEMO-001", "DEMO-002", "DEMO-003"], result.stdout
    root = re.search(r"data in (\S+)/server", result.stdout)
    url = re.search(r"Local server: (http://\S+)", result.stdout)
    assert root and url
    assert not Path(root.group(1)).exists()
    assert _leftovers(root.group(1)) == []
    assert _server_down(url.group(1))


def test_demo_stopped_by_sigterm_midway_leaves_nothing_running() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "demo", "--headless", "--runs", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("Run 1/50"):
                break
        else:
            pytest.fail(f"the demo ended early: {''.join(seen)}{proc.stderr.read() if proc.stderr else ''}")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGTERM
    text = "".join(seen)
    root = re.search(r"data in (\S+)/server", text)
    url = re.search(r"Local server: (http://\S+)", text)
    assert root and url
    assert not Path(root.group(1)).exists()
    assert _leftovers(root.group(1)) == []
    assert _server_down(url.group(1))


def test_demo_help() -> None:
    result = run_cli(["demo", "--help"])
    assert result.returncode == 0
    assert "--headless" in result.stdout and "--runs" in result.stdout


def test_demo_serve_offers_a_second_station_whose_token_enrolls(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "demo", "--serve"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("Serving until"):
                break
        else:
            pytest.fail(f"the demo ended early: {''.join(seen)}{proc.stderr.read() if proc.stderr else ''}")
        text = "".join(seen)
        command = re.search(r"TOFU_TUI_TOKEN=(\S+) sh (\S+/install\.sh) --from \S+ --url (\S+) --no-service", text)
        assert command, text
        token, script, url = command.groups()
        assert Path(script).exists()
        # The printed token enrolls a second station (what install.sh does after installing).
        home = tmp_path / "second"
        login = run_cli(["login", "--url", url], env={"TOFU_TUI_HOME": str(home), "TOFU_TUI_TOKEN": token})
        assert login.returncode == 0, login.stderr
        whoami = run_cli(["whoami"], env={"TOFU_TUI_HOME": str(home)})
        assert "demo-bench-2" in whoami.stdout
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    root = re.search(r"data in (\S+)/server", text)
    assert root
    assert not Path(root.group(1)).exists()
    assert _leftovers(root.group(1)) == []
    assert _server_down(url)

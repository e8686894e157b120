"""`tofu-tui demo`: the whole system on one machine, with nothing set up first.

A temporary folder holds everything: the local server (a subprocess on a free loopback
port), a Git repository with the bundled sample procedure, and a station enrolled with
a real setup token whose daemon (`tofu-tui --headless`, a subprocess) deploys the
procedure from Git. The console then attaches to that daemon; `--headless` instead
runs the procedure N times through the daemon (the dashboard's `Run` command) and
prints what reached the server. On the way out, for any reason, both processes are
stopped and the folder is removed: nothing keeps running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

SAMPLE = Path(__file__).resolve().parent / "samples" / "sample_procedure"
STATION_NAME = "demo-bench"
PROCEDURE_NAME = "PSU Board EOL"


class DemoError(Exception):
    """The demo could not go on; the message says why."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"{what}: the process exited with status {proc.returncode}.")
        time.sleep(0.1)
    raise DemoError(f"Timed out after {timeout:.0f} s waiting for {what}.")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tofu_tui", *args]


def _stop(proc: subprocess.Popen[str] | None, grace: float) -> None:
    """SIGTERM, then kill if it has not exited within GRACE seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)


class DaemonLog:
    """Follows the daemon's JSON-lines log on a thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            with contextlib.suppress(json.JSONDecodeError):
                line = json.loads(raw)
                if isinstance(line, dict):
                    self.lines.append(line)

    def find(self, event: str, **fields: Any) -> dict[str, Any] | None:
        for line in list(self.lines):
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                return line
        return None


class Demo:
    """Everything the demo starts, and the one place that stops it all."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.root = Path(tempfile.mkdtemp(prefix="tofu-tui-demo-"))
        self.server_dir = self.root / "server"
        self.home = self.root / "station"
        self.repo_dir = self.root / "repo"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[str] | None = None
        self.daemon: subprocess.Popen[str] | None = None
        self.log: DaemonLog | None = None
        self.http: httpx.Client | None = None
        self.station_id = ""
        self.procedure_id = ""
        self.deployment_id = ""
        self.env = {k: v for k, v in os.environ.items() if k != "TOFU_TUI_TOKEN"}
        self.env["TOFU_TUI_HOME"] = str(self.home)

    # --- setting up --------------------------------------------------------------------
    def start_server(self) -> None:
        init = subprocess.run(
            _cli("server", "init", "--data", str(self.server_dir), "--port", str(self.port), "--json"),
            capture_output=True, text=True, env=self.env, timeout=120, stdin=subprocess.DEVNULL,
        )
        if init.returncode != 0:
            raise DemoError(f"The local server could not be set up: {init.stderr.strip()}")
        key = json.loads(init.stdout)["api_key"]
        self.server = subprocess.Popen(
            _cli("server", "start", "--data", str(self.server_dir), "--port", str(self.port)),
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, 60, "the local server to start", self.server)
        self.http = httpx.Client(base_url=f"{self.url}/api", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.say(f"Local server: {self.url} (data in {self.server_dir})")

    def api(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        assert self.http is not None
        response = self.http.request(method, path, json=body, params=params or None)
        if not response.is_success:
            raise DemoError(f"The server refused {method} {path}: {response.status_code} {response.text[:200]}")
        return response.json()

    def make_repository(self) -> str:
        import pygit2

        shutil.copytree(SAMPLE, self.repo_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        repo = pygit2.init_repository(str(self.repo_dir), bare=False, initial_head="main")
        repo.index.add_all()
        repo.index.write()
        tree = repo.index.write_tree()
        signature = pygit2.Signature("tofu-tui demo", "demo@localhost")
        sha = str(repo.create_commit("refs/heads/main", signature, signature, "Sample procedure", tree, []))
        self.say(f"Git repository with the sample procedure: {self.repo_dir} ({sha[:8]})")
        return sha

    def enroll(self) -> None:
        self.station_id = self.api("POST", "/v2/stations", {"name": STATION_NAME})["id"]
        token = self.api("POST", f"/v2/stations/{self.station_id}/setup-token")["token"]
        # The token travels in the environment, as the installers pass it.
        login = subprocess.run(
            _cli("login", "--url", self.url), capture_output=True, text=True, timeout=120,
            env={**self.env, "TOFU_TUI_TOKEN": token}, stdin=subprocess.DEVNULL,
        )
        if login.returncode != 0:
            raise DemoError(f"The station could not enroll: {login.stderr.strip()}")
        self.say(f"Station '{STATION_NAME}' enrolled with a setup token (TOFU_TUI_HOME={self.home})")

    def deploy(self) -> None:
        self.procedure_id = self.api("POST", "/v2/procedures", {"name": PROCEDURE_NAME})["id"]
        self.api("PATCH", f"/v2/procedures/{self.procedure_id}",
                 {"repository": {"url": str(self.repo_dir), "branch": "main", "path": ""}})
        self.api("POST", f"/v2/stations/{self.station_id}/procedures", {"procedure_id": self.procedure_id})
        self.deployment_id = str(self.api("POST", "/v2/deployments", {"procedure_id": self.procedure_id})["id"])
        self.say(f"Procedure '{PROCEDURE_NAME}' linked and deployed ({self.deployment_id})")

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            _cli("--headless"), env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        assert self.daemon.stdout is not None
        self.log = DaemonLog(self.daemon.stdout)
        log = self.log
        _wait(lambda: log.find("deployment_pulled", deployment_id=self.deployment_id, status="active"),
              180, "the station to pull and activate the deployment", self.daemon)
        self.say("Station daemon running; the deployment is active")

    def setup(self) -> None:
        self.start_server()
        self.make_repository()
        self.enroll()
        self.deploy()
        self.start_daemon()

    # --- the headless demo -------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/v2/runs", limit=100)["data"])

    def run_headless(self, count: int, timeout: float) -> list[dict[str, Any]]:
        for number in range(1, count + 1):
            serial = f"DEMO-{number:03d}"
            self.api("POST", f"/v2/stations/{self.station_id}/commands",
                     {"name": "Run", "procedure_id": self.procedure_id, "serial_number": serial,
                      "part_number": "PSU-33-A"})
            def arrived(n: int = number) -> bool:
                return len(self.runs()) >= n

            _wait(arrived, timeout, f"run {serial} to reach the server", self.daemon)
            self.say(f"Run {number}/{count} ({serial}) reached the server")
        details = [self.api("GET", f"/v2/runs/{run['id']}") for run in self.runs()]
        details.sort(key=lambda r: str(r.get("created_at", "")))
        return details

    def second_station(self, installer: Path | None = None) -> str:
        """A fresh station on this server and the command that installs and enrolls it."""
        station_id = self.api("POST", "/v2/stations", {"name": f"{STATION_NAME}-2"})["id"]
        token = self.api("POST", f"/v2/stations/{station_id}/setup-token")["token"]
        checkout = Path(__file__).resolve().parents[1]
        if installer is None and (checkout / "pyproject.toml").exists() and (checkout / "install.sh").exists():
            installer = checkout / "install.sh"
        if installer is not None:
            # From a checkout: install that same checkout.
            return (f"TOFU_TUI_TOKEN={token} sh {installer} --from {installer.parent} "
                    f"--url {self.url} --no-service")
        # Installed from a wheel: the server hands out the installer itself.
        return f"curl -fsSL {self.url}/install.sh | TOFU_TUI_TOKEN={token} sh -s -- --url {self.url} --no-service"

    def serve(self) -> None:
        """Keep everything running until Ctrl-C or SIGTERM."""
        while True:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise DemoError(f"The station daemon exited with status {self.daemon.returncode}.")
            if self.server is not None and self.server.poll() is not None:
                raise DemoError(f"The local server exited with status {self.server.returncode}.")
            time.sleep(0.5)

    # --- the console -------------------------------------------------------------------
    def run_console(self) -> int:
        from tofu_tui.tui.launch import run_console

        previous = os.environ.get("TOFU_TUI_HOME")
        os.environ["TOFU_TUI_HOME"] = str(self.home)
        try:
            return run_console()
        finally:
            if previous is None:
                os.environ.pop("TOFU_TUI_HOME", None)
            else:
                os.environ["TOFU_TUI_HOME"] = previous

    # --- tearing down ------------------------------------------------------------------
    def close(self) -> None:
        # The daemon lets a run in flight finish on SIGTERM: give it time, then kill.
        _stop(self.daemon, grace=30)
        if self.http is not None:
            self.http.close()
        _stop(self.server, grace=15)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_demo(say: Callable[[str], None]) -> Iterator[Demo]:
    """A set-up demo; stopped and removed on exit, also on Ctrl-C or SIGTERM."""

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    demo = Demo(say)
    try:
        demo.setup()
        yield demo
    finally:
        demo.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def describe_run(run: dict[str, Any]) -> str:
    unit = run.get("unit") or {}
    phases = run.get("phases") or []
    measurements = sum(len(p.get("measurements") or []) for p in phases)
    return (f"{unit.get('serial_number', '?'):<10} {run.get('outcome', '?'):<6} "
            f"{len(phases)} phases, {measurements} measurements, deployment {run.get('deployment_id') or '-'}")

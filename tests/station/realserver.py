"""The real local server (`tofu-tui server start`) as a subprocess on a fixed loopback
port, so tests can stop it and start it again at the same address; plus the admin
calls of api.md that set a station up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import cli_env, run_cli
from tests.station.fakeserver import free_port


class RealServer:
    """`RealServer(data)` runs `tofu-tui server start` (stoppable, restartable on its
    port); `RealServer.in_thread(data)` the same app in this process (faster)."""

    def __init__(self, data: Path, *, url: str | None = None, key: str | None = None) -> None:
        self.data = data
        self.proc: subprocess.Popen[str] | None = None
        self._context: Any = None
        if url is None:
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            init = run_cli(["server", "init", "--data", str(data), "--port", str(self.port), "--json"])
            assert init.returncode == 0, init.stderr
            self.key = json.loads(init.stdout)["api_key"]
        else:
            self.url, self.key = url, key or ""
        self.http = httpx.Client(base_url=self.url + "/api", headers={"Authorization": f"Bearer {self.key}"},
                                 timeout=30)

    @classmethod
    def in_thread(cls, data: Path) -> RealServer:
        from tests.server.fixtures import start_server

        context = start_server(data)
        url, key, _data, _handle = context.__enter__()
        server = cls(data, url=url, key=key)
        server._context = context
        return server

    def start(self) -> RealServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tofu_tui", "server", "start", "--data", str(self.data), "--port", str(self.port)],
            env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.http.close()
        if self._context is not None:
            self._context.__exit__(None, None, None)

    # --- admin ---------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(method, path, json=body, params=params or None)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def station(self, name: str = "bench-1") -> tuple[str, str]:
        station_id = self.call("POST", "/v2/stations", {"name": name})["id"]
        token = self.call("POST", f"/v2/stations/{station_id}/setup-token")["token"]
        return station_id, token

    def procedure(self, name: str, repo_url: str, station_id: str) -> str:
        procedure_id = self.call("POST", "/v2/procedures", {"name": name})["id"]
        self.call("PATCH", f"/v2/procedures/{procedure_id}",
                  {"repository": {"url": repo_url, "branch": "main", "path": ""}})
        self.call("POST", f"/v2/stations/{station_id}/procedures", {"procedure_id": procedure_id})
        return procedure_id

    def deploy(self, procedure_id: str, sha: str | None = None) -> str:
        body: dict[str, Any] = {"procedure_id": procedure_id}
        if sha:
            body["sha"] = sha
        return str(self.call("POST", "/v2/deployments", body)["id"])

    def command(self, station_id: str, name: str, **fields: Any) -> None:
        self.call("POST", f"/v2/stations/{station_id}/commands", {"name": name, **fields})

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 100, **filters}
            if cursor is not None:
                params["cursor"] = cursor
            page = self.call("GET", "/v2/runs", **params)
            out.extend(page["data"])
            if not page["meta"]["has_more"]:
                return out
            cursor = page["meta"]["next_cursor"]

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v2/runs/{run_id}"))

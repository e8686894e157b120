"""A small real HTTP server speaking the station's part of spec/api.md, with fault
injection, for tests that need answers the real local server won't give on demand
(500, 429, 422 in a row). Runs uvicorn on a free loopback port in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse


@dataclass
class FakeState:
    tokens: dict[str, str] = field(default_factory=dict)  # token -> "valid" | "expired" | "used"
    keys: set[str] = field(default_factory=set)
    station: dict[str, Any] = field(default_factory=lambda: {
        "id": "st_1", "name": "bench-1", "organization_slug": "acme", "connection_status": "offline",
        "procedures": []})
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> body
    refs: dict[str, str] = field(default_factory=dict)  # client_run_ref -> id
    run_order: list[str] = field(default_factory=list)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_faults: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # popped per POST /runs
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    pending_commands: list[dict[str, Any]] = field(default_factory=list)
    stream_events: list[dict[str, Any]] = field(default_factory=list)
    stream_connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_token(self, state: str = "valid") -> str:
        token = secrets.token_hex(32)
        self.tokens[token] = state
        return token


def build_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in state.keys

    def unauthorized() -> JSONResponse:
        return JSONResponse({"message": "Invalid or revoked key", "code": "unauthorized"}, status_code=401)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/cli/login/redeem")
    async def redeem(request: Request) -> JSONResponse:
        body = await request.json()
        status = state.tokens.get(body.get("token", ""))
        if status is None:
            return JSONResponse({"message": "Unknown token", "code": "token_invalid"}, status_code=401)
        if status == "expired":
            return JSONResponse({"message": "Token expired", "code": "token_expired"}, status_code=410)
        if status == "used":
            return JSONResponse({"message": "Token already used", "code": "token_used"}, status_code=409)
        for key in ("hostname", "os", "platform", "mac_address", "cli_version"):
            if not body.get(key):
                return JSONResponse({"message": f"missing {key}", "code": "invalid"}, status_code=422)
        state.tokens[body["token"]] = "used"
        key = "tofu_" + secrets.token_hex(16)
        state.keys = {key}  # redeeming again replaces the previous key
        return JSONResponse({"api_key": key, "station_id": state.station["id"],
                             "station_name": state.station["name"], "organization_slug": "acme",
                             "installation_id": "inst" + secrets.token_hex(4)})

    @app.get("/api/cli/whoami")
    def whoami(request: Request) -> Any:
        if not authorized(request):
            return unauthorized()
        return {"auth_type": "station", "station_id": state.station["id"], "station_name": state.station["name"],
                "organization_slug": "acme"}

    @app.get("/api/v2/stations/current")
    def current(request: Request) -> Any:
        if not authorized(request):
            return unauthorized()
        return state.station

    @app.post("/api/v2/runs")
    async def create_run(request: Request) -> Any:
        if not authorized(request):
            return unauthorized()
        if state.run_faults:
            code, body = state.run_faults.pop(0)
            return JSONResponse(body, status_code=code)
        body = await request.json()
        with state.lock:
            ref = body.get("client_run_ref")
            if ref and ref in state.refs:
                return {"id": state.refs[ref]}
            run_id = "run_" + secrets.token_hex(6)
            state.runs[run_id] = body
            state.run_order.append(run_id)
            if ref:
                state.refs[ref] = run_id
        return {"id": run_id}

    @app.post("/api/v2/runs/{run_id}/attachments")
    async def create_attachment(run_id: str, request: Request) -> Any:
        if not authorized(request):
            return unauthorized()
        body = await request.json()
        att_id = "att_" + secrets.token_hex(6)
        state.attachments[att_id] = {"run_id": run_id, "name": body["name"], "data": None, "final": False}
        return {"id": att_id, "upload_url": f"/api/uploads/{att_id}"}

    @app.put("/api/uploads/{att_id}")
    async def put_upload(att_id: str, request: Request) -> Any:
        state.attachments[att_id]["data"] = await request.body()
        return {}

    @app.post("/api/v2/attachments/{att_id}/finalize")
    def finalize(att_id: str, request: Request) -> Any:
        if not authorized(request):
            return unauthorized()
        state.attachments[att_id]["final"] = True
        return {"url": f"/files/{att_id}"}

    @app.post("/api/cli/heartbeat")
    async def heartbeat(request: Request) -> Any:
        if not authorized(request):
            return unauthorized()
        state.heartbeats.append(await request.json())
        commands, state.pending_commands = state.pending_commands, []
        return {"server_time": "2026-01-01T00:00:00Z", "commands": commands}

    @app.websocket("/api/cli/stream")
    async def stream(websocket: WebSocket) -> None:
        header = websocket.headers.get("authorization", "")
        if not (header.startswith("Bearer ") and header[7:] in state.keys):
            await websocket.close(code=4401)
            return
        await websocket.accept()
        state.stream_connections += 1

        async def pump_commands() -> None:
            while True:
                if state.pending_commands:
                    command = state.pending_commands.pop(0)
                    await websocket.send_json({"type": "command", "command": command})
                await asyncio.sleep(0.05)

        pump = asyncio.create_task(pump_commands())
        try:
            while True:
                message = await websocket.receive_json()
                if message.get("type") == "event":
                    state.stream_events.append(message["event"])
        except WebSocketDisconnect:
            pass
        finally:
            pump.cancel()
            state.stream_connections -= 1

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    def __init__(self, port: int | None = None) -> None:
        self.state = FakeState()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeServer:
        config = uvicorn.Config(build_app(self.state), host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def enroll_key(self) -> str:
        key = "tofu_" + secrets.token_hex(16)
        self.state.keys.add(key)
        return key


@contextlib.contextmanager
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()

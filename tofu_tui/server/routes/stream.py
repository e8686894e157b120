"""The station stream (WebSocket): events in, commands out (at least once: until the
station acknowledges them), presence while open."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from tofu_tui.server import db
from tofu_tui.server.errors import APIError
from tofu_tui.server.state import ServerState

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


def _station_for_key(state: ServerState, key: str) -> tuple[str | None, str]:
    with state.sessions() as session:
        try:
            principal = state.authenticate(session, key)
        except APIError as exc:
            return None, exc.message
    if principal.is_user or principal.station_id is None:
        return None, "the stream needs a station key"
    return principal.station_id, ""


def _open_presence(state: ServerState, station_id: str) -> int:
    with state.sessions() as session:
        now = state.now()
        row = db.Presence(station_id=station_id, kind="stream", started_at=now, ended_at=None)
        session.add(row)
        station = session.get(db.Station, station_id)
        if station is not None:
            station.last_seen_at = now
        session.commit()
        return row.id


def _close_presence(state: ServerState, presence_id: int, station_id: str) -> None:
    with state.sessions() as session:
        now = state.now()
        row = session.get(db.Presence, presence_id)
        if row is not None:
            row.ended_at = max(now, row.started_at)
        station = session.get(db.Station, station_id)
        if station is not None:
            station.last_seen_at = now
        session.commit()


def _touch(state: ServerState, station_id: str) -> None:
    with state.sessions() as session:
        station = session.get(db.Station, station_id)
        if station is not None:
            station.last_seen_at = state.now()
            session.commit()


def _store_event(state: ServerState, station_id: str, event: dict[str, Any]) -> None:
    digest = hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    with state.sessions() as session:
        now = state.now()
        station = session.get(db.Station, station_id)
        if station is not None:
            station.last_seen_at = now
        session.add(
            db.StationEvent(
                station_id=station_id, received_at=now, type=str(event["type"])[:64], payload=event, digest=digest
            )
        )
        try:
            session.commit()
        except IntegrityError:  # sent again after a reconnect: already stored
            session.rollback()
            _touch(state, station_id)


def _pending(state: ServerState, station_id: str, sent: set[str]) -> list[dict[str, object]]:
    with state.sessions() as session:
        return state.pending_commands(session, station_id, skip=sent)


def _ack(state: ServerState, station_id: str, ids: list[str]) -> None:
    with state.sessions() as session:
        state.ack_commands(session, station_id, ids)


MAX_ACK_IDS = 1000


@router.websocket("/api/cli/stream")
async def stream(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.server
    header = websocket.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else ""
    await websocket.accept()
    if not key:
        await websocket.close(CLOSE_UNAUTHORIZED, "missing station key: send 'Authorization: Bearer <key>'")
        return
    station_id, why = await run_in_threadpool(_station_for_key, state, key)
    if station_id is None:
        code = CLOSE_FORBIDDEN if why.startswith("the stream") else CLOSE_UNAUTHORIZED
        await websocket.close(code, why)
        return

    wake = asyncio.Event()
    state.hub.register(station_id, wake)
    presence_id = await run_in_threadpool(_open_presence, state, station_id)
    cap = state.settings.max_stream_message_bytes

    # Commands are marked delivered only when the station acknowledges them ({"type":
    # "ack", "ids": [...]}): one whose send fails, or whose connection drops before the
    # ack, goes out again on the next connection or heartbeat. Each goes once a connection.
    sent: set[str] = set()

    async def send_pending() -> None:
        for command in await run_in_threadpool(_pending, state, station_id, sent):
            await websocket.send_json({"type": "command", "command": command})
            sent.add(str(command["id"]))

    async def key_still_valid() -> bool:
        """A key revoked while its stream is open (the station removed, enrolled again,
        the key deleted) ends the stream, so the station learns it now (cli.md: exit 75)."""
        current, why = await run_in_threadpool(_station_for_key, state, key)
        if current == station_id:
            return True
        await websocket.close(CLOSE_UNAUTHORIZED, why[:120])
        return False

    async def send_commands() -> None:
        while True:
            try:
                await asyncio.wait_for(wake.wait(), timeout=state.settings.ws_ping_interval)
            except TimeoutError:
                if not await key_still_valid():
                    return
                await websocket.send_json({"type": "ping"})
                await run_in_threadpool(_touch, state, station_id)
                # Also catches a command whose wake-up was missed.
                await send_pending()
                continue
            wake.clear()
            if not await key_still_valid():
                return
            await send_pending()

    async def receive_events() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = message["bytes"].decode("utf-8", "replace")
            if raw is None:
                continue
            if len(raw.encode("utf-8", "replace")) > cap:
                await websocket.send_json(
                    {"type": "error", "code": "message_too_large", "message": f"messages are capped at {cap} bytes: shrink the event"}
                )
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                await websocket.send_json({"type": "error", "code": "invalid_json", "message": "send one JSON object per message"})
                continue
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "ping":
                await websocket.send_json({"type": "pong"})
                await run_in_threadpool(_touch, state, station_id)
            elif kind == "pong":
                await run_in_threadpool(_touch, state, station_id)
            elif kind == "ack" and isinstance(data.get("ids"), list):
                ids = [i for i in data["ids"][:MAX_ACK_IDS] if isinstance(i, str)]
                await run_in_threadpool(_ack, state, station_id, ids)
            elif kind == "event" and isinstance(data.get("event"), dict) and isinstance(data["event"].get("type"), str):
                await run_in_threadpool(_store_event, state, station_id, data["event"])
            else:
                await websocket.send_json(
                    {"type": "error", "code": "invalid_message", "message": 'expected {"type": "event", "event": {"type": ...}}'}
                )

    sender: asyncio.Task[None] | None = None
    try:
        # Whatever queued (or went unacknowledged) while the station was away goes first.
        await send_pending()
        sender = asyncio.create_task(send_commands())
        await receive_events()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        state.hub.unregister(station_id, wake)
        await run_in_threadpool(_close_presence, state, presence_id, station_id)

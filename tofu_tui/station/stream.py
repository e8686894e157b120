"""Presence: the WebSocket stream to the dashboard, with the HTTP heartbeat as fallback.

Events go out live while the stream is open (each message capped at 60 kB: large
events are shrunk, never allowed to break the connection); while it is down they wait
in a bounded outbox (`outbox.py`) and go out in order when it is back. Commands come
in, are acknowledged by id, and a repeated id is dropped (the dashboard sends a command
until it is acknowledged). The stream reconnects with jittered exponential backoff from
1 s to 60 s; while it is down the station reports presence and picks up commands by
HTTP heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import connect

from tofu_tui.models.events import Event
from tofu_tui.station.api_client import ApiClient, ApiError, Unauthorized
from tofu_tui.station.outbox import Outbox
from tofu_tui.station.seen_commands import SeenCommands

log = logging.getLogger("tofu_tui.station.stream")

MAX_MESSAGE_BYTES = 60_000
PING_INTERVAL_S = 15.0
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
# A connection that died silently is noticed by the ping timeout: what was sent within
# that long before the drop may not have arrived, so it is sent again.
UNCONFIRMED_WINDOW_S = 2 * PING_INTERVAL_S + 5


def reconnect_delay(failures: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential from 1 s to 60 s, with jitter so a fleet does not reconnect at once."""
    base = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** max(0, failures - 1))
    return base * (0.5 + 0.5 * rand())


def _shrunk(value: Any, max_str: int, max_list: int) -> Any:
    if isinstance(value, str) and len(value) > max_str:
        return value[:max_str] + f"… [{len(value) - max_str} characters cut]"
    if isinstance(value, list):
        items = value if len(value) <= max_list else value[-max_list:]
        return [_shrunk(v, max_str, max_list) for v in items]
    if isinstance(value, dict):
        return {k: _shrunk(v, max_str, max_list) for k, v in value.items()}
    return value


def encode_event(event: Event | dict[str, Any], limit: int = MAX_MESSAGE_BYTES) -> str:
    """The stream message for an event, at most `limit` bytes: logs are cut first (the
    latest kept), then long strings and long lists, harder until it fits."""
    data = event if isinstance(event, dict) else event.model_dump(mode="json")
    message = json.dumps({"type": "event", "event": data}, separators=(",", ":"))
    if len(message.encode()) <= limit:
        return message
    shrunk = dict(data)
    run = shrunk.get("run")
    if isinstance(run, dict) and run.get("logs"):
        shrunk["run"] = {**run, "logs": run["logs"][-20:]}
    # The cut strings say so themselves; no extra field, so the event stays a valid model.
    for max_str, max_list in ((4000, 200), (1000, 50), (200, 10), (50, 3), (10, 1)):
        candidate = _shrunk(shrunk, max_str, max_list)
        message = json.dumps({"type": "event", "event": candidate}, separators=(",", ":"))
        if len(message.encode()) <= limit:
            return message
    bare = {k: ({} if isinstance(v, dict) else [] if isinstance(v, list) else _shrunk(v, 100, 0))
            for k, v in data.items()}
    return json.dumps({"type": "event", "event": bare}, separators=(",", ":"))


def stream_url(server_url: str) -> str:
    base = server_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return base + "/api/cli/stream"


class Presence:
    """Keeps the station present on the dashboard and relays commands to `on_command`."""

    def __init__(self, server_url: str, api_key: str, client: ApiClient, *,
                 on_command: Callable[[dict[str, Any]], Awaitable[None]],
                 on_connectivity: Callable[[bool, str | None], None],
                 on_revoked: Callable[[str], None],
                 heartbeat_body: Callable[[], dict[str, Any]],
                 heartbeat_interval_s: float = 30.0, ca_cert: str | None = None,
                 seen: SeenCommands | None = None) -> None:
        self.url = stream_url(server_url)
        self.api_key = api_key
        self.client = client
        self.on_command = on_command
        self.on_connectivity = on_connectivity
        self.on_revoked = on_revoked
        self.heartbeat_body = heartbeat_body
        self.heartbeat_interval_s = heartbeat_interval_s
        self.ssl: ssl.SSLContext | None = None
        if self.url.startswith("wss://"):
            self.ssl = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
        self.stream_open = False
        self.http_ok = False
        self.connected = False
        self.detail: str | None = None
        self.outbox = Outbox(encode_event)
        self._outbox_ready = asyncio.Event()
        self._last_heartbeat = float("-inf")
        self.connections = 0
        # Commands are acknowledged by id as they arrive (the dashboard repeats one until
        # then) and dropped when seen before; without a store, within this process only.
        self.seen = seen
        self._seen_here: set[str] = set()
        self._unacked: set[str] = set()  # came by heartbeat; acked on the next one or the stream
        self._closing: asyncio.Future[None] | None = None

    def publish(self, event: Event) -> None:
        """Forward an event live; while the stream is down it waits in the bounded
        outbox and goes out, in order, when the stream is back."""
        self.outbox.put(event)
        self._outbox_ready.set()

    def _update(self, detail: str | None) -> None:
        connected = self.stream_open or self.http_ok
        self.detail = detail
        if connected != self.connected:
            self.connected = connected
            self.on_connectivity(connected, detail)

    async def run(self) -> None:
        failures = 0
        while True:
            detail = await self._stream_once()
            if detail is None:
                failures = 0
            failures += 1
            delay = reconnect_delay(failures)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + delay
            # The stream is down: presence and commands over HTTP until the next try.
            while loop.time() < deadline:
                await self._heartbeat_if_due()
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))

    async def _stream_once(self) -> str | None:
        """One connection, until it drops. Returns why it ended (None if it was open)."""
        opened = False
        try:
            async with connect(self.url, additional_headers={"Authorization": f"Bearer {self.api_key}"},
                               open_timeout=10, ping_interval=PING_INTERVAL_S, ping_timeout=PING_INTERVAL_S,
                               max_size=4 * 1024 * 1024, ssl=self.ssl, proxy=None) as ws:
                opened = True
                self.connections += 1
                self.outbox.connection_opened()
                self.stream_open = True
                self._update("stream open")
                if self._unacked:
                    await self._ack(ws, sorted(self._unacked))
                sender = asyncio.create_task(self._send(ws))
                sender.add_done_callback(functools.partial(self._sender_done, ws))
                try:
                    async for raw in ws:
                        await self._receive(raw, ws)
                finally:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await sender
                    self.outbox.connection_lost(UNCONFIRMED_WINDOW_S)
            detail = "the dashboard closed the stream"
        except websockets.exceptions.InvalidStatus as exc:
            detail = f"the dashboard refused the stream ({exc.response.status_code})"
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            detail = f"stream lost: {exc}" if opened else f"cannot open the stream: {exc}"
        self.stream_open = False
        self._update(detail)
        return None if opened else detail

    async def _send(self, ws: Any) -> None:
        while True:
            item = self.outbox.take()
            if item is None:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            try:
                await ws.send(item.message)
            except (OSError, websockets.exceptions.WebSocketException, asyncio.CancelledError):
                self.outbox.unsent(item)  # goes first on the next connection
                raise
            except Exception:
                # This one event cannot be sent (a bug): said, and let go, so it cannot
                # stop every event after it.
                log.exception("an event could not be sent to the dashboard and was dropped")
                continue
            self.outbox.sent(item)

    def _sender_done(self, ws: Any, task: asyncio.Task[None]) -> None:
        """A sender that died of a bug must not leave a stream that only listens: said,
        and the connection closed, so the next one sends again. (Receiving goes on to
        the close: a command being carried out is never cut short.)"""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or isinstance(exc, OSError | websockets.exceptions.WebSocketException):
            return
        log.error("the dashboard stream's sender failed; reconnecting", exc_info=exc)
        self._closing = asyncio.ensure_future(ws.close(code=1011, reason="station sender failed"))

    async def _receive(self, raw: str | bytes, ws: Any) -> None:
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            return
        if isinstance(message, dict) and message.get("type") == "command" and isinstance(message.get("command"), dict):
            await self._command(message["command"], ws)

    async def _ack(self, ws: Any, ids: list[str]) -> None:
        try:
            await ws.send(json.dumps({"type": "ack", "ids": ids}, separators=(",", ":")))
        except websockets.exceptions.WebSocketException:
            self._unacked.update(ids)  # the next connection or heartbeat carries them
        else:
            self._unacked.difference_update(ids)

    def _first_time(self, command_id: str) -> bool:
        if self.seen is not None:
            return self.seen.first_time(command_id)
        if command_id in self._seen_here:
            return False
        self._seen_here.add(command_id)
        return True

    async def _command(self, command: dict[str, Any], ws: Any | None) -> None:
        """Acknowledge, then act once: taken and recorded before it runs, so a repeat
        (the dashboard did not get the ack) is dropped even after a restart."""
        command_id = command.get("id")
        if isinstance(command_id, str) and command_id:
            first = self._first_time(command_id)
            if ws is not None:
                await self._ack(ws, [command_id])
            else:
                self._unacked.add(command_id)
            if not first:
                log.info("command %s was already taken: dropped the repeat", command_id)
                return
        await self.on_command(command)

    async def _heartbeat_if_due(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_heartbeat < self.heartbeat_interval_s:
            return
        self._last_heartbeat = loop.time()
        acks = sorted(self._unacked)
        try:
            reply = await asyncio.to_thread(self.client.heartbeat, {**self.heartbeat_body(), "acks": acks})
        except Unauthorized as exc:
            self.http_ok = False
            self._update(exc.message)
            self.on_revoked(exc.message)
            return
        except ApiError as exc:
            self.http_ok = False
            self._update(exc.message)
            return
        self.http_ok = True
        self._unacked.difference_update(acks)
        self._update("heartbeat (stream unavailable)")
        for command in reply.commands:
            await self._command(command, None)

    def mark_http(self, ok: bool, detail: str | None = None) -> None:
        """Any API call's result says whether the server answers (used while the stream is down)."""
        if self.http_ok != ok:
            self.http_ok = ok
            self._update(detail)

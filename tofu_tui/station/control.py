"""The local control socket: how the console and the CLI attach to a running daemon.

JSON lines both ways. A client sends
  {"type": "status"}                      -> {"type": "status", "status": StationStatus}
  {"type": "command", "command": {...}}   -> {"type": "reply", "ok": bool, "result"|"error": ...}
  {"type": "subscribe"}                   -> {"type": "event", "event": {...}} for every event after it
On Unix the socket file is 0600 inside a 0700 folder: the file system is the
authentication. On Windows it is loopback TCP, and the first line must be
{"type": "auth", "token": ...} with the token from a file only the user can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from tofu_tui.models.commands import Command, parse_command
from tofu_tui.models.events import Event, parse_event
from tofu_tui.models.status import StationStatus
from tofu_tui.station.paths import StationPaths

log = logging.getLogger("tofu_tui.station.control")

IS_WINDOWS = sys.platform == "win32"
_LIMIT = 16 * 1024 * 1024  # one line may carry a whole run payload


class ControlError(Exception):
    """No daemon to talk to, or it refused the request; the message says why."""


class NoDaemon(ControlError):
    """Nothing listens on the control socket: no daemon runs for this station."""


class CommandRefused(ControlError):
    """The daemon received the command and refused it (e.g. unknown procedure)."""


class ControlHandler(Protocol):
    def status(self) -> StationStatus: ...

    async def handle_command(self, command: Command) -> dict[str, Any]: ...

    def subscribe(self) -> asyncio.Queue[Event | None]: ...

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None: ...


def _dump(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, default=str) + "\n").encode()


# How the daemon writes its log: level, event name, fields (the daemon's `say`).
Say = Callable[[str, str, dict[str, Any]], None]


def _log_say(level: str, event: str, fields: dict[str, Any]) -> None:
    log.error("%s: %s\n%s", event, fields.get("message"), fields.get("traceback", ""))


class ControlServer:
    def __init__(self, paths: StationPaths, handler: ControlHandler, say: Say | None = None) -> None:
        """`say` writes the daemon log (a request that fails unexpectedly is logged
        there with its traceback); without it, the `logging` module."""
        self.paths = paths
        self.handler = handler
        self.say: Say = say or _log_say
        self._server: asyncio.AbstractServer | None = None
        self._token = secrets.token_urlsafe(32)
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if IS_WINDOWS:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_LIMIT)
            port = self._server.sockets[0].getsockname()[1]
            from tofu_tui.station.config import atomic_write

            atomic_write(self.paths.control_token, json.dumps({"port": port, "token": self._token}).encode(), 0o600)
            return
        path = self.paths.control_socket
        path.unlink(missing_ok=True)  # a stale socket of a dead daemon (the daemon lock is held)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=_LIMIT)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if IS_WINDOWS:
            self.paths.control_token.unlink(missing_ok=True)
        else:
            self.paths.control_socket.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        subscription: asyncio.Queue[Event | None] | None = None
        forwarder: asyncio.Task[None] | None = None
        lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> None:
            async with lock:
                writer.write(_dump(message))
                await writer.drain()

        try:
            authed = not IS_WINDOWS
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                except json.JSONDecodeError:
                    await send({"type": "reply", "ok": False, "error": "not JSON"})
                    continue
                kind = request.get("type")
                if not authed:
                    if kind == "auth" and secrets.compare_digest(str(request.get("token", "")), self._token):
                        authed = True
                        await send({"type": "reply", "ok": True})
                        continue
                    await send({"type": "reply", "ok": False, "error": "unauthorized"})
                    break
                if kind == "status":
                    try:
                        status = self.handler.status().model_dump(mode="json")
                    except Exception as exc:
                        await send(self._failed("status", exc))
                        continue
                    await send({"type": "status", "status": status})
                elif kind == "command":
                    try:
                        command = parse_command(request.get("command") or {})
                    except ValidationError as exc:
                        await send({"type": "reply", "ok": False, "error": f"invalid command: {exc.errors()[0]['msg']}"})
                        continue
                    try:
                        result = await self.handler.handle_command(command)
                    except CommandRefused as exc:
                        await send({"type": "reply", "ok": False, "error": str(exc)})
                        continue
                    except Exception as exc:
                        await send(self._failed(f"{command.name} command", exc))
                        continue
                    await send({"type": "reply", "ok": True, "result": result})
                elif kind == "subscribe" and subscription is None:
                    subscription = self.handler.subscribe()
                    forwarder = asyncio.create_task(self._forward(subscription, send))
                    forwarder.add_done_callback(functools.partial(self._forwarder_done, writer))
                    await send({"type": "reply", "ok": True})
                else:
                    await send({"type": "reply", "ok": False, "error": f"unknown request {kind!r}"})
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):  # ValueError: a line over the limit
            pass
        finally:
            if forwarder is not None:
                forwarder.cancel()
            if subscription is not None:
                self.handler.unsubscribe(subscription)
            writer.close()
            if task is not None:
                self._clients.discard(task)

    def _failed(self, what: str, exc: Exception) -> dict[str, Any]:
        """A bug, not a refusal: logged with its traceback, answered plainly; the
        connection stays open (the console keeps its session)."""
        detail = f"{type(exc).__name__}: {exc}"
        self.say("error", "control_request_failed", {"request": what, "message": detail,
                                                     "traceback": traceback.format_exc()})
        return {"type": "reply", "ok": False,
                "error": f"The station daemon failed to handle the {what} ({detail}). It is still running: try "
                         "again, and if it fails again, report this error with the daemon's log "
                         "(it holds the details)."}

    def _forwarder_done(self, writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
        """Events stopped going out to this client because of a bug: said in the daemon
        log, and the connection closed, so the client sees it and attaches again rather
        than wait for events that never come."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        self.say("error", "control_events_failed", {"message": f"{type(exc).__name__}: {exc}",
                                                    "traceback": "".join(traceback.format_exception(exc))})
        writer.close()

    @staticmethod
    async def _forward(queue: asyncio.Queue[Event | None],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        with contextlib.suppress(ConnectionError):
            while (event := await queue.get()) is not None:
                await send({"type": "event", "event": event.model_dump(mode="json")})


# --- clients ----------------------------------------------------------------------------


def _windows_address(paths: StationPaths) -> tuple[int, str]:
    try:
        data = json.loads(paths.control_token.read_text())
        return int(data["port"]), str(data["token"])
    except (OSError, ValueError, KeyError):
        raise NoDaemon("No station daemon is running.") from None


def daemon_running(paths: StationPaths) -> bool:
    try:
        request_status(paths, timeout=2.0)
        return True
    except ControlError:
        return False


def _roundtrip(paths: StationPaths, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request, one answer, blocking (the CLI)."""
    try:
        if IS_WINDOWS:
            port, token = _windows_address(paths)
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(paths.control_socket))
            token = ""
    except OSError:
        raise NoDaemon("No station daemon is running.") from None
    with sock, sock.makefile("rwb") as stream:
        try:
            if IS_WINDOWS:
                stream.write(_dump({"type": "auth", "token": token}))
                stream.flush()
                if not json.loads(stream.readline() or b"{}").get("ok"):
                    raise ControlError("The station daemon refused the control token.")
            stream.write(_dump(message))
            stream.flush()
            line = stream.readline()
        except OSError as exc:
            raise ControlError(f"The station daemon did not answer ({exc}).") from None
    if not line:
        raise ControlError("The station daemon closed the connection.")
    return dict(json.loads(line))


def request_status(paths: StationPaths, timeout: float = 5.0) -> StationStatus:
    answer = _roundtrip(paths, {"type": "status"}, timeout)
    if answer.get("type") != "status":
        raise ControlError(str(answer.get("error") or "The station daemon sent no status."))
    return StationStatus.model_validate(answer["status"])


def send_command(paths: StationPaths, command: Command, timeout: float = 30.0) -> dict[str, Any]:
    answer = _roundtrip(paths, {"type": "command", "command": command.model_dump(mode="json")}, timeout)
    if not answer.get("ok"):
        raise CommandRefused(str(answer.get("error") or "the daemon refused the command"))
    return dict(answer.get("result") or {})


class ControlClient:
    """An async connection to the daemon: status, commands, and the live events."""

    def __init__(self, paths: StationPaths) -> None:
        self.paths = paths
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> ControlClient:
        try:
            if IS_WINDOWS:
                port, token = _windows_address(self.paths)
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port, limit=_LIMIT)
                self._writer.write(_dump({"type": "auth", "token": token}))
            else:
                self._reader, self._writer = await asyncio.open_unix_connection(
                    str(self.paths.control_socket), limit=_LIMIT)
        except OSError:
            raise NoDaemon("No station daemon is running.") from None
        self._reader_task = asyncio.create_task(self._read())
        if IS_WINDOWS and not (await self._replies.get()).get("ok"):
            raise ControlError("The station daemon refused the control token.")
        return self

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                if message.get("type") == "event":
                    try:
                        self._events.put_nowait(parse_event(message["event"]))
                    except ValidationError:
                        continue
                else:
                    self._replies.put_nowait(message)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):  # ValueError: a line over the limit
            pass
        except Exception:  # a message this client cannot read: said, and treated as the daemon gone
            log.exception("reading from the station daemon failed")
        finally:
            self._events.put_nowait(None)
            self._replies.put_nowait({"type": "reply", "ok": False, "error": "The station daemon went away."})

    @property
    def alive(self) -> bool:
        """Still connected: the daemon has not closed the connection."""
        return self._reader_task is not None and not self._reader_task.done()

    async def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._writer is None or not self.alive:
            # Once the daemon hung up, no reply will ever come: never wait for one.
            raise ControlError("Not connected to the station daemon.")
        async with self._lock:
            try:
                self._writer.write(_dump(message))
                await self._writer.drain()
            except OSError as exc:
                raise ControlError(f"The station daemon went away ({exc}).") from None
            return await self._replies.get()

    async def status(self) -> StationStatus:
        answer = await self._ask({"type": "status"})
        if answer.get("type") != "status":
            raise ControlError(str(answer.get("error") or "no status"))
        return StationStatus.model_validate(answer["status"])

    async def command(self, command: Command) -> dict[str, Any]:
        answer = await self._ask({"type": "command", "command": command.model_dump(mode="json")})
        if not answer.get("ok"):
            raise CommandRefused(str(answer.get("error") or "refused"))
        return dict(answer.get("result") or {})

    async def subscribe(self) -> None:
        answer = await self._ask({"type": "subscribe"})
        if not answer.get("ok"):
            raise ControlError(str(answer.get("error")))

    async def events(self) -> AsyncIterator[Event]:
        """Events after `subscribe()`, until the daemon goes away."""
        while (event := await self._events.get()) is not None:
            yield event

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def __aenter__(self) -> ControlClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def socket_path_for_display(paths: StationPaths) -> Path:
    return paths.control_token if IS_WINDOWS else paths.control_socket

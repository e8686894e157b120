"""Plug host and plug proxy (procedure-format §5). Standard library only.

Run as a script with the procedure's interpreter, this file hosts one plug instance:

    python plughost.py            (reads one JSON line on stdin:
                                   {"key", "file", "class", "directory", "config", "log", "socket"})

It loads the class by file path, builds it with `Class(**config)` on a background thread
(30 s budget), listens on a Unix socket (loopback TCP where there are none) and prints
one JSON line on stdout: {"ok": true, "address": "unix:/path" | "tcp:127.0.0.1:port"} or
{"ok": false, "error": "..."}. After that its stdout and stderr go to the plug log.

Wire format, one JSON object per line each way, one call at a time per plug:
    -> {"op": "call", "method": "read", "args": [1, 2]}
    <- {"ok": true, "result": ...}  |  {"ok": false, "error": "ValueError: ...", "traceback": "..."}
    -> {"op": "ping"}                <- {"ok": true}
    -> {"op": "shutdown"}            <- {"ok": true}   (then `del` + gc, and the process exits)

Imported by the worker (also standard library only), `make_proxy()` / `PlugProxy` is
what a phase receives for a plug parameter.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any

CONSTRUCT_BUDGET_S = 30.0
CONNECT_BUDGET_S = 30.0
DELETE_BUDGET_S = 5.0
RESERVED = ("name", "address", "deadline", "call")


# ---------------------------------------------------------------- client side (in phases)


class PlugError(RuntimeError):
    """A plug method raised, or the plug process went away; carries the remote traceback."""

    def __init__(self, message: str, remote_traceback: str | None = None) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


def _parse_address(address: Any) -> tuple[str, Any]:
    """("unix", path) or ("tcp", (host, port)) from a PlugAddress dict or a string."""
    if isinstance(address, dict):
        address = address.get("address", "")
    text = str(address)
    if text.startswith("unix:"):
        return "unix", text[5:]
    if text.startswith("tcp:"):
        text = text[4:]
    host, _, port = text.rpartition(":")
    return "tcp", (host or "127.0.0.1", int(port))


def _connect(address: Any, timeout: float) -> socket.socket:
    family, target = _parse_address(address)
    if family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # type: ignore[attr-defined,unused-ignore]
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(max(timeout, 0.001))
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


class _Connection:
    """One socket with line framing; every read is bounded by a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def receive(self, deadline: float | None) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            if deadline is None:
                self.sock.settimeout(None)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("deadline passed")
                self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class PlugProxy:
    """A phase's handle on a plug: `plug.method(*args)` runs the method in the plug process.

    Arguments are positional and JSON-serialisable; keyword arguments raise TypeError.
    `name`, `address`, `deadline` and `call` belong to the proxy: reach a plug method
    with one of those names through `plug.call("name", [args])`.
    """

    def __init__(self, name: str, address: Any, deadline: float | None = None) -> None:
        # `deadline` is a time.monotonic() value (the phase's), None for no limit.
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "deadline", deadline)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_connection", None)

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__") and method.endswith("__"):
            raise AttributeError(method)

        def remote(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                raise TypeError(
                    f"plug {self.name}.{method}() takes positional arguments only"
                    f" (got keyword arguments: {', '.join(sorted(kwargs))})"
                )
            return self.call(method, list(args))

        remote.__name__ = method
        return remote

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"plug {self.name}: attributes cannot be set through the proxy")

    def __repr__(self) -> str:
        return f"<plug {self.name} at {self.address!r}>"

    def _remaining(self, cap: float | None = None) -> float | None:
        if self.deadline is None:
            return cap
        remaining = self.deadline - time.monotonic()
        return remaining if cap is None else min(cap, remaining)

    def call(self, method: str, args: list[Any] | tuple[Any, ...] | None = None) -> Any:
        """Call plug method `method` with positional `args`; returns its JSON result."""
        arguments = list(args or [])
        try:
            payload = json.dumps(
                {"op": "call", "method": method, "args": arguments}, separators=(",", ":"), allow_nan=False
            )
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"plug {self.name}.{method}(): arguments must be JSON-serialisable ({exc})"
            ) from None
        with self._lock:
            connection = self._connection
            if connection is None:
                budget = self._remaining(CONNECT_BUDGET_S)
                if budget is not None and budget <= 0:
                    raise TimeoutError(f"plug {self.name}.{method}(): the phase deadline has passed")
                try:
                    connection = _Connection(_connect(self.address, budget or CONNECT_BUDGET_S))
                except OSError as exc:
                    raise PlugError(
                        f"plug {self.name}: cannot reach its process ({exc}); it may have stopped"
                    ) from None
                object.__setattr__(self, "_connection", connection)
            deadline = self.deadline
            try:
                connection.sock.sendall(payload.encode() + b"\n")
                reply = connection.receive(deadline)
            except TimeoutError:
                self._drop()
                raise TimeoutError(
                    f"plug {self.name}.{method}() did not answer before the phase deadline"
                ) from None
            except OSError as exc:
                self._drop()
                raise PlugError(f"plug {self.name}.{method}(): the plug process went away ({exc})") from None
            if reply is None:
                self._drop()
                raise PlugError(f"plug {self.name}.{method}(): the plug process ended during the call")
        if reply.get("ok"):
            return reply.get("result")
        remote = reply.get("traceback") or ""
        message = f"plug {self.name}.{method}() raised {reply.get('error', 'an error')}"
        if remote:
            message += "\n\nRemote traceback (in the plug process):\n" + remote.rstrip()
        raise PlugError(message, remote or None)

    def _drop(self) -> None:
        connection = self._connection
        object.__setattr__(self, "_connection", None)
        if connection is not None:
            connection.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._drop()


def make_proxy(key: str, address: Any, deadline_s: float | None = None) -> PlugProxy:
    """The worker's entry point: `deadline_s` is the phase's remaining time in seconds."""
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    return PlugProxy(key, address, deadline)


def request(address: Any, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """One request on a fresh connection (the engine's ping and shutdown)."""
    connection = _Connection(_connect(address, timeout))
    try:
        connection.send(message)
        return connection.receive(time.monotonic() + timeout)
    finally:
        connection.close()


# ---------------------------------------------------------------- host side (plug process)


class _Host:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.instance: Any = None
        self.call_lock = threading.Lock()  # one call at a time, whoever asks
        self.stopping = threading.Event()
        self.server: socket.socket | None = None

    def construct(self) -> str | None:
        """Build the instance within the budget; the error text, or None on success."""
        outcome: dict[str, Any] = {}

        def build() -> None:
            try:
                cls = _load_class(self.spec["file"], self.spec["class"], self.spec["key"], self.spec.get("package") or "")
                config = self.spec.get("config") or {}
                outcome["instance"] = cls(**config)
            except BaseException:
                outcome["error"] = traceback.format_exc()

        thread = threading.Thread(target=build, name="plug-constructor", daemon=True)
        thread.start()
        budget = float(self.spec.get("construct_budget_s") or CONSTRUCT_BUDGET_S)
        thread.join(budget)
        if thread.is_alive():
            return f"the constructor did not finish within {budget:g} s"
        if "error" in outcome:
            return str(outcome["error"])
        self.instance = outcome["instance"]
        return None

    def listen(self) -> str:
        path = self.spec.get("socket")
        if path and hasattr(socket, "AF_UNIX"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(path)
            address = f"unix:{path}"
        else:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.bind(("127.0.0.1", 0))
            address = f"tcp:127.0.0.1:{server.getsockname()[1]}"
        server.listen(64)
        self.server = server
        return address

    def serve(self) -> None:
        assert self.server is not None
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                break
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()
        if self.stopping.is_set():
            # shutdown() is deleting the instance on another thread and ends the process
            # itself; returning now would end the interpreter and kill that daemon thread
            # in the middle of the plug's __del__.
            time.sleep(DELETE_BUDGET_S + 5.0)

    def handle(self, client: socket.socket) -> None:
        if client.family != getattr(socket, "AF_UNIX", None):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(client)
        try:
            while True:
                message = connection.receive(None)
                if message is None:
                    return
                op = message.get("op")
                if op == "call":
                    reply = self.call(str(message.get("method")), message.get("args") or [])
                elif op == "ping":
                    reply = {"ok": True}
                elif op == "shutdown":
                    connection.send({"ok": True})
                    self.shutdown()
                    return
                else:
                    reply = {"ok": False, "error": f"unknown operation {op!r}"}
                connection.send(reply)
        except (OSError, ValueError):
            return
        finally:
            connection.close()

    def call(self, method: str, args: list[Any]) -> dict[str, Any]:
        with self.call_lock:
            try:
                target = getattr(self.instance, method)
                result = target(*args) if callable(target) else target
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    pass  # reported like any other error; the plug stays up
                return {
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
            try:
                json.dumps(result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                return {
                    "ok": False,
                    "error": f"TypeError: the result of {method}() is not JSON-serialisable ({exc})",
                }
            return {"ok": True, "result": result}

    def shutdown(self) -> None:
        """`del` the instance and collect garbage (`__del__` is the only hook), then exit."""
        self.stopping.set()

        def delete() -> None:
            with self.call_lock:
                self.instance = None
                gc.collect()

        thread = threading.Thread(target=delete, daemon=True)
        thread.start()
        thread.join(DELETE_BUDGET_S)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        path = self.spec.get("socket")
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
        os._exit(0)


def _load_class(file: str, name: str, key: str, package: str = "") -> Any:
    # Inside a package of the procedure (plugs/dmm.py), the module belongs to it, so
    # `from .base import Instrument` works as in a phase module.
    module_name = f"{package}._tofu_tui_plug_{key}" if package else f"_tofu_tui_plug_{key}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"{file} has no class {name!r}") from None


def _redirect_output(log: str | None) -> None:
    """After the handshake, the plug's own prints go to its log, never to our pipe."""
    sys.stdout.flush()
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if log else os.open(os.devnull, os.O_WRONLY)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)


def main() -> int:
    spec = json.loads(sys.stdin.readline())
    directory = spec.get("directory")
    if directory and directory not in sys.path:
        sys.path.insert(0, directory)
    handshake = sys.stdout
    host = _Host(spec)
    try:
        address = host.listen()
    except OSError as exc:
        handshake.write(json.dumps({"ok": False, "error": f"cannot listen: {exc}"}) + "\n")
        handshake.flush()
        return 1
    # The constructor's prints belong in the plug log, so redirect before building it;
    # the handshake goes through a duplicate of the original stdout.
    handshake = os.fdopen(os.dup(1), "w", encoding="utf-8")
    _redirect_output(spec.get("log"))
    error = host.construct()
    if error is not None:
        handshake.write(json.dumps({"ok": False, "error": error}) + "\n")
        handshake.flush()
        os._exit(1)  # the constructor thread may still be running
    handshake.write(json.dumps({"ok": True, "address": address, "pid": os.getpid()}) + "\n")
    handshake.flush()
    handshake.close()
    threading.Thread(target=_exit_with_engine, args=(host,), daemon=True).start()
    host.serve()
    return 0


def _exit_with_engine(host: _Host) -> None:
    """The engine holds our stdin open; when it goes away (even killed), so do we."""
    with contextlib.suppress(Exception):
        while sys.stdin.readline():
            pass
    host.shutdown()


if __name__ == "__main__":
    sys.exit(main())

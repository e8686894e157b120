"""Serve the application with uvicorn: from `tofu-tui server start` (foreground, clean
stop on SIGTERM/SIGINT) or from a thread on a pre-bound socket (tests, the demo)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from tofu_tui.server.app import create_app
from tofu_tui.server.settings import Settings

WS_MAX_SIZE = 1024 * 1024


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits ~40 ms on a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutting down; a clean stop exits 0 instead.
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._on_started is not None and not self.should_exit:
            self._on_started()


def make_server(settings: Settings, *, on_started: Callable[[], None] | None = None, log_level: str = "warning") -> _Server:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval * 2,
        ws_max_size=WS_MAX_SIZE,
        timeout_graceful_shutdown=5,
        access_log=False,
        lifespan="on",
    )
    return _Server(config, on_started)


def serve(settings: Settings, sock: socket.socket, *, on_started: Callable[[], None] | None = None, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM (uvicorn installs the handlers in the main thread)."""
    make_server(settings, on_started=on_started, log_level=log_level).run(sockets=[sock])


class ServerThread:
    """The real server on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.sock = bind(host, 0)
        self.url = url_of(self.sock)
        self.server = make_server(settings)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def app(self) -> Any:
        return self.server.config.app

    def start(self, timeout: float = 20) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The console attached to a running station daemon, over its local control socket.

`connect()` answers None when no daemon runs for this station (the console then runs
the engine in process), and raises `BackendUnavailable` when one runs but cannot be
reached. Quitting the console only closes its connections: the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tofu_tui.models.commands import Command
from tofu_tui.models.events import Event
from tofu_tui.models.status import StationStatus
from tofu_tui.station.control import (
    IS_WINDOWS,
    CommandRefused,
    ControlClient,
    ControlError,
    socket_path_for_display,
)
from tofu_tui.station.paths import StationPaths, daemon_running, station_paths
from tofu_tui.tui.backend import BackendMode, BackendUnavailable

STARTING_GRACE_S = 5.0  # a daemon holds its lock a moment before its socket listens


def _socket_exists(paths: StationPaths) -> bool:
    return (paths.control_token if IS_WINDOWS else paths.control_socket).exists()


def _unreachable(paths: StationPaths, detail: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"A station daemon is running but its control socket ({socket_path_for_display(paths)}) {detail}. "
        "Run tofu-tui as the user the daemon runs as, with the same TOFU_TUI_HOME; or restart the daemon "
        "(`tofu-tui service stop`, then `tofu-tui service start`)."
    )


async def connect(paths: StationPaths | None = None) -> DaemonBackend | None:
    """Attach to this station's daemon; None when none runs."""
    paths = paths or station_paths()
    deadline = asyncio.get_running_loop().time() + STARTING_GRACE_S
    while True:
        if _socket_exists(paths):
            client = ControlClient(paths)
            try:
                async with asyncio.timeout(STARTING_GRACE_S):
                    await client.connect()
                    await client.status()  # a socket file that answers is a daemon
            except (ControlError, TimeoutError):
                await client.close()
                if not daemon_running(paths):
                    return None  # the stale socket of a daemon that died; the engine replaces it
                if asyncio.get_running_loop().time() >= deadline:
                    raise _unreachable(paths, "does not answer (another user's, or the daemon is stuck)") \
                        from None
            else:
                return DaemonBackend(paths, client)
        elif not daemon_running(paths):
            return None
        elif asyncio.get_running_loop().time() >= deadline:
            raise _unreachable(paths, "does not exist")
        await asyncio.sleep(0.1)


class DaemonBackend:
    """`StationBackend` over the control socket: one connection for status and
    commands, one more for each event subscription."""

    def __init__(self, paths: StationPaths, client: ControlClient) -> None:
        self.paths = paths
        self._client: ControlClient | None = client
        self._subscriptions: set[ControlClient] = set()
        self._closed = False

    @property
    def mode(self) -> BackendMode:
        return "attached"

    async def _connection(self) -> ControlClient:
        """The command connection; reconnected when the daemon was restarted meanwhile."""
        if self._closed:
            raise BackendUnavailable("The console has detached from the station.")
        client = self._client
        if client is not None and client.alive:
            return client
        self._client = None
        if client is not None:
            await client.close()
        try:
            self._client = await ControlClient(self.paths).connect()
        except ControlError:
            raise BackendUnavailable(
                "The station daemon is not running. Start it (`tofu-tui service start` or "
                "`tofu-tui --headless`); the console attaches again by itself."
            ) from None
        return self._client

    async def status(self) -> StationStatus:
        client = await self._connection()
        try:
            return await client.status()
        except ControlError as exc:
            raise BackendUnavailable(f"The station daemon did not answer: {exc}") from None

    async def events(self) -> AsyncIterator[Event]:
        if self._closed:
            return
        try:
            client = await ControlClient(self.paths).connect()
        except ControlError as exc:
            raise BackendUnavailable(f"Cannot follow the station's events: {exc}") from None
        self._subscriptions.add(client)
        try:
            await client.subscribe()
            async for event in client.events():
                yield event
        except ControlError as exc:
            raise BackendUnavailable(f"Cannot follow the station's events: {exc}") from None
        finally:
            self._subscriptions.discard(client)
            await client.close()

    async def send(self, command: Command) -> str | None:
        try:
            client = await self._connection()
        except BackendUnavailable as exc:
            return str(exc)
        try:
            await client.command(command)
        except CommandRefused as exc:
            return str(exc)
        except ControlError as exc:
            return f"The station daemon did not answer: {exc}"
        return None

    async def close(self) -> None:
        """Detach: close our connections; the daemon keeps running."""
        self._closed = True
        clients = [c for c in (self._client, *self._subscriptions) if c is not None]
        self._client = None
        self._subscriptions.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()

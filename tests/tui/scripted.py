"""A deterministic station for console tests: scripted snapshots and events, no clock.

It implements `tofu_tui.tui.backend.StationBackend` exactly as the daemon client and
the in-process engine will, and records every command it was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from tofu_tui.models.commands import Command
from tofu_tui.models.events import Event
from tofu_tui.models.status import StationStatus
from tofu_tui.tui.backend import BackendMode, BackendUnavailable

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def ts(seconds: float) -> str:
    """A fixed event timestamp `seconds` after 11:59:00 on the fixed day."""
    moment = NOW - timedelta(seconds=60) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


Reply = Callable[[Command], "str | Iterable[Event] | None"]


class ScriptedBackend:
    """Replays `script` to the first subscriber, then whatever `emit()` pushes.

    `replies` decides what a command returns: a refusal string, None (accepted), or
    events to publish in reaction (accepted), by command name. `sent` records commands.
    """

    def __init__(
        self,
        status: StationStatus,
        script: Iterable[Event] = (),
        *,
        mode: BackendMode = "attached",
        replies: dict[str, Reply] | None = None,
    ) -> None:
        self._status = status
        self._mode: BackendMode = mode
        self._queue: asyncio.Queue[Event | None] | None = None
        self._script = list(script)
        self.replies = dict(replies or {})
        self.sent: list[Command] = []
        self.closed = False
        self.unreachable: str | None = None
        self.status_calls = 0
        self.emitted = len(self._script)
        self.handled = 0

    @property
    def mode(self) -> BackendMode:
        return self._mode

    def set_status(self, status: StationStatus) -> None:
        self._status = status

    async def status(self) -> StationStatus:
        self.status_calls += 1
        if self.unreachable:
            raise BackendUnavailable(self.unreachable)
        return self._status

    def _ensure_queue(self) -> asyncio.Queue[Event | None]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            for event in self._script:
                self._queue.put_nowait(event)
        return self._queue

    async def events(self) -> AsyncIterator[Event]:
        queue = self._ensure_queue()
        while True:
            event = await queue.get()
            if event is None:
                self.handled += 1
                return
            yield event
            # The consumer came back for more: it has handled this event.
            self.handled += 1

    def emit(self, *events: Event) -> None:
        queue = self._ensure_queue()
        for event in events:
            queue.put_nowait(event)
        self.emitted += len(events)

    def hang_up(self) -> None:
        self._ensure_queue().put_nowait(None)
        self.emitted += 1

    def pending(self) -> int:
        """Events not yet handled by the console."""
        return self.emitted - self.handled

    async def send(self, command: Command) -> str | None:
        self.sent.append(command)
        reply = self.replies.get(command.name)
        if reply is None:
            return None
        result = reply(command)
        if result is None or isinstance(result, str):
            return result
        self.emit(*result)
        return None

    async def close(self) -> None:
        self.closed = True


def days_back(count: int, end: date) -> list[date]:
    return [end - timedelta(days=count - 1 - index) for index in range(count)]

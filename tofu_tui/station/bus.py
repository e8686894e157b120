"""The station's event bus: producers publish once, every front end subscribes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

from tofu_tui.models.events import Event, PhaseLog, RunFinished, RunStarted

log = logging.getLogger("tofu_tui.station.bus")

SUBSCRIBER_QUEUE = 10_000


class EventBus:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread = threading.get_ident()
        self._sinks: list[Callable[[Event], None]] = []
        self._queues: list[asyncio.Queue[Event | None]] = []

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        """A synchronous consumer called on the loop thread (headless log, stream, run log)."""
        self._sinks.append(sink)

    def subscribe(self, replay: list[Event] | None = None) -> asyncio.Queue[Event | None]:
        """A queue of every event from now on, after `replay` (events already delivered)."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        for event in (replay or [])[-(SUBSCRIBER_QUEUE // 2):]:
            queue.put_nowait(event)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, event: Event) -> None:
        """Safe from any thread: the engine may emit from its worker threads."""
        if threading.get_ident() != self._thread:
            self.loop.call_soon_threadsafe(self._deliver, event)
        else:
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:
                log.exception("an event consumer failed")
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A client that stopped reading must not grow the daemon without bound.
                self.unsubscribe(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    def close(self) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self._queues.clear()


class RunReplay:
    """The events of the run in flight, so a console attaching mid-run (`tmux attach`)
    sees that run and can answer its open prompt. A bus sink: it holds exactly what
    subscribers were given. Bounded: every slot's `run_started`, then the last `logs`
    log lines and the last `others` other events; forgotten once every slot finished."""

    def __init__(self, logs: int = 500, others: int = 2000) -> None:
        self.execution_id: str | None = None
        self._started: list[Event] = []
        self._finished = 0
        self._logs: deque[Event] = deque(maxlen=logs)
        self._others: deque[Event] = deque(maxlen=others)

    def _reset(self, execution_id: str | None) -> None:
        self.execution_id = execution_id
        self._started.clear()
        self._finished = 0
        self._logs.clear()
        self._others.clear()

    def record(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            if event.execution_id != self.execution_id:
                self._reset(event.execution_id)
            self._started.append(event)  # one per slot
        elif self.execution_id is None or event.execution_id != self.execution_id:
            return
        elif isinstance(event, RunFinished):
            self._finished += 1
            if self._finished >= len(self._started):
                self._reset(None)
        else:
            (self._logs if isinstance(event, PhaseLog) else self._others).append(event)

    def events(self) -> list[Event]:
        rest = sorted([*self._others, *self._logs], key=lambda event: event.seq)
        return [*self._started, *rest]

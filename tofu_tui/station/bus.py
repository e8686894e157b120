"""The station's event bus: producers publish once, every front end subscribes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from tofu_tui.models.events import Event

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

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
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

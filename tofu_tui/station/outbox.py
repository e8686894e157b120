"""Events on their way to the dashboard stream, kept while the stream is down.

A run in progress when the connection drops must not look stuck on the dashboard once
it returns, so events wait here (in memory, bounded) until the stream takes them, in
the order they happened. Under pressure the least useful go first: live detail (logs,
measurements) before progress (phases, prompts, station events) before the run's own
start and finish, oldest first (so the run in progress keeps its latest lines; a run
that finished offline is in the upload queue complete anyway). What was let go is
said, once per run, when the stream is back.

Events sent just before a drop may be lost in flight without any error (a cut cable is
noticed only by the ping timeout): the stream takes back the ones sent within that
window and sends them again; the dashboard stores a repeated event once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tofu_tui.models.events import Event, PhaseLog, RunFinished, RunStarted

DETAIL, PROGRESS, FRAME = 0, 1, 2
_DETAIL_TYPES = frozenset({"phase_log", "measurement", "ui_update", "attachment"})

MAX_EVENTS = 5000
MAX_BYTES = 4_000_000
RECENT_KEPT = 2000


@dataclass(frozen=True)
class Item:
    order: int
    rank: int
    message: str
    execution_id: str

    @property
    def size(self) -> int:
        return len(self.message)


def rank_of(event: Event) -> int:
    if isinstance(event, RunStarted | RunFinished):
        return FRAME
    return DETAIL if event.type in _DETAIL_TYPES else PROGRESS


class Outbox:
    def __init__(self, encode: Callable[[Event], str], *, max_events: int = MAX_EVENTS,
                 max_bytes: int = MAX_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        self.encode = encode
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.clock = clock
        self._queues: tuple[deque[Item], ...] = (deque(), deque(), deque())
        self._bytes = 0
        self._order = 0
        self.dropped: dict[str, int] = {}  # execution id -> live events let go
        # Sent on this connection, newest last; bounded like the rest (count and bytes).
        self._recent: deque[tuple[float, Item]] = deque()
        self._recent_bytes = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def put(self, event: Event) -> None:
        self._append(event)
        while len(self) > self.max_events or self._bytes > self.max_bytes:
            self._evict()

    def _append(self, event: Event) -> None:
        self._order += 1
        item = Item(self._order, rank_of(event), self.encode(event), event.execution_id)
        self._queues[item.rank].append(item)
        self._bytes += item.size

    def _evict(self) -> None:
        for queue in self._queues:
            if queue:
                self._let_go(queue.popleft())
                return

    def _let_go(self, item: Item) -> None:
        self._bytes -= item.size
        if item.execution_id:
            self.dropped[item.execution_id] = self.dropped.get(item.execution_id, 0) + 1

    def take(self) -> Item | None:
        """The oldest event waiting, or None."""
        heads = [q for q in self._queues if q]
        if not heads:
            return None
        item = min(heads, key=lambda q: q[0].order).popleft()
        self._bytes -= item.size
        return item

    def sent(self, item: Item) -> None:
        self._recent.append((self.clock(), item))
        self._recent_bytes += item.size
        while len(self._recent) > RECENT_KEPT or self._recent_bytes > self.max_bytes // 2:
            self._recent_bytes -= self._recent.popleft()[1].size

    def unsent(self, item: Item) -> None:
        """`item` was taken but could not be sent: it goes first again."""
        self._queues[item.rank].appendleft(item)
        self._bytes += item.size

    def connection_lost(self, window_s: float) -> int:
        """The connection dropped: what was sent within the last `window_s` seconds may
        not have arrived; it goes first again, in its order. Returns how many."""
        since = self.clock() - window_s
        again = [item for sent_at, item in self._recent if sent_at >= since]
        self._recent.clear()
        self._recent_bytes = 0
        for item in sorted(again, key=lambda i: i.order, reverse=True):
            self.unsent(item)
        while len(self) > self.max_events or self._bytes > self.max_bytes:
            self._evict()
        return len(again)

    def connection_opened(self) -> None:
        """Say, once per run, what was let go while offline (in the run's own feed)."""
        self._recent.clear()
        self._recent_bytes = 0
        dropped, self.dropped = self.dropped, {}
        for execution_id, count in dropped.items():  # beyond the bound: one short line a run
            self._append(PhaseLog(execution_id=execution_id, level="WARNING",
                              message=f"{count} live events of this run were not kept while the station was "
                                      "offline; the run itself is uploaded complete from the station's queue."))

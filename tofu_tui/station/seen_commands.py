"""The dashboard's commands already taken, by id (in state.db).

The dashboard sends a command again until the station acknowledges it (a send that
failed, an ack lost with the connection, a heartbeat reply that never arrived), so
the station drops an id it has already taken, across restarts too. Bounded: the
newest `keep` ids are kept, far more than can be in flight at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

KEEP = 2000


class SeenCommands:
    def __init__(self, conn: sqlite3.Connection, *, keep: int = KEEP, clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.keep = keep
        self.clock = clock
        self._added = 0

    def first_time(self, command_id: str) -> bool:
        """Record `command_id`; False when it was already taken."""
        added = self.conn.execute("INSERT OR IGNORE INTO seen_commands(id, seen_at) VALUES (?, ?)",
                                  (command_id, self.clock())).rowcount == 1
        if added:
            self._added += 1
            if self._added % 100 == 0:
                self.prune()
        return added

    def prune(self) -> None:
        self.conn.execute("DELETE FROM seen_commands WHERE id NOT IN "
                          "(SELECT id FROM seen_commands ORDER BY seen_at DESC LIMIT ?)", (self.keep,))

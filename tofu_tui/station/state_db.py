"""`state.db`: the one owner of the station's SQLite schema and its migrations.

WAL so the daemon, the CLI and the console read while the daemon writes; every
connection checks the file's integrity when it opens it, so a damaged database is
reported plainly instead of losing runs later.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Append only: each entry moves the schema one version up (PRAGMA user_version).
MIGRATIONS: list[str] = [
    # 1: upload queue, its attachments, key/value meta, run history, ledger, deployments
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_run_ref TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        procedure_id TEXT,
        serial_number TEXT,
        outcome TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        run_id TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE queue_attachments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        server_id TEXT,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE run_history (
        execution_id TEXT NOT NULL,
        client_run_ref TEXT NOT NULL UNIQUE,
        procedure_id TEXT,
        deployment_id TEXT,
        outcome TEXT,
        finished_at REAL NOT NULL
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL
    );
    CREATE INDEX ledger_kind_end ON ledger(kind, end);
    CREATE TABLE procedures (
        procedure_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        identifier TEXT,
        linked INTEGER NOT NULL DEFAULT 1,
        wanted_deployment_id TEXT,
        active_deployment_id TEXT,
        staged_deployment_id TEXT,
        last_error TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE deployments (
        deployment_id TEXT PRIMARY KEY,
        procedure_id TEXT NOT NULL,
        sha TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        branch TEXT,
        deployed_at TEXT,
        repo_url TEXT,
        subpath TEXT,
        checkout TEXT,
        python TEXT,
        status TEXT NOT NULL,
        error TEXT,
        updated_at REAL NOT NULL,
        last_used_at REAL
    );
    """,
    # 2: attachment uploads resume where they stopped (created -> uploaded -> done), so a
    # crash between steps never leaves a second copy on the run
    """
    ALTER TABLE queue_attachments ADD COLUMN upload_url TEXT;
    ALTER TABLE queue_attachments ADD COLUMN step TEXT NOT NULL DEFAULT 'new'
    """,
    # 3: ids of the dashboard's commands already taken, so one sent again (the dashboard
    # repeats a command until the station acknowledges it) is not run twice
    """
    CREATE TABLE seen_commands (id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
    CREATE INDEX seen_commands_seen_at ON seen_commands(seen_at)
    """,
]


class StateDbError(Exception):
    """state.db is damaged or from a newer version; the message says what to do."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the station's state database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StateDbError(_damaged(path, str(exc))) from None
    if check != "ok":
        conn.close()
        raise StateDbError(_damaged(path, check))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    _migrate(conn, path)
    return conn


def _damaged(path: Path, detail: str) -> str:
    return (f"The station's state database {path} is damaged ({detail}). Stop the station, move the file "
            "aside (queued runs may be recovered from it with the sqlite3 tool), and start again.")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StateDbError(f"{path} was written by a newer tofu-tui (schema {version}). Upgrade tofu-tui.")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

"""Helpers for run tests: run the real CLI with --json and check the event stream."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tofu_tui.models.events import parse_event

UNIT = "unit: {auto_identify: true, serial_number: {default_value: SN1}, part_number: {default_value: PN1}}\n"


def events_of(stdout: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for event in events:
        parse_event(event)  # every line is a valid event of the one model
    return events


def check_stream(events: list[dict[str, Any]]) -> None:
    """run-protocol.md: gap-free seq from 1, one execution id, ms timestamps,
    run_started first, run_finished last, phase_started before an attempt's
    logs and measurements, phase_finished after them."""
    assert events, "no events"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["execution_id"] for e in events}) == 1
    for e in events:
        assert e["ts"].endswith("Z") and len(e["ts"].split(".")[-1]) == 4, e["ts"]
    assert events[0]["type"] == "run_started"
    finished = [i for i, e in enumerate(events) if e["type"] == "run_finished"]
    assert finished and finished[-1] == len(events) - 1
    assert all(e["type"] == "run_finished" for e in events[finished[0]:])
    open_attempts: set[tuple[str, Any]] = set()
    for e in events:
        key = (e.get("phase_key"), e.get("slot"))
        if e["type"] == "phase_started":
            assert key not in open_attempts
            open_attempts.add(key)
        elif e["type"] == "phase_finished":
            assert key in open_attempts, f"phase_finished without phase_started: {e}"
            open_attempts.discard(key)
        elif e["type"] in ("measurement", "attachment", "ui_update"):
            assert key in open_attempts, f"{e['type']} outside its attempt: {e}"
        elif e["type"] == "phase_log" and e.get("level") != "WARNING" and e.get("phase_key") is not None:
            assert key in open_attempts, f"log outside its attempt: {e}"
    assert not open_attempts


def run_json(
    path: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    proc = run_cli(["run", str(path), "--json", *args], input=input, env=env, timeout=120)
    return proc, events_of(proc.stdout)


def payload(events: list[dict[str, Any]], index: int = -1) -> dict[str, Any]:
    runs = [e for e in events if e["type"] == "run_finished"]
    run: dict[str, Any] = runs[index]["run"]
    return run


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]

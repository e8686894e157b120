"""Console under a log flood: key-to-screen latency, drain time, memory.

A procedure logs 100,000 lines as fast as it can (the event source never waits, the
worst case for the console). While they pour in, the pilot presses a key every few
milliseconds (`l`, which re-filters the whole scrollback and redraws the log title)
and we time each press from the key event to the first frame composed after the
key's action ran. The peer in the same run is the idle console: same keys, no flood.

    /work/venv/bin/python benchmarks/bench_console.py [--lines 100000] [--presses 60]

Targets (issue 6): p99 under 100 ms while flooding, RSS under 250 MB, bounded
scrollback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events

from tofu_tui.models.commands import Command
from tofu_tui.models.events import Event, PhaseLog, PhaseStarted, ProcedureRef, RunStarted
from tofu_tui.models.status import LinkedProcedure, StationStatus
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.backend import BackendMode

EXEC = "bench-0001"
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING")


class FloodBackend:
    """A station whose procedure logs `lines` lines without ever pausing."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.produced = 0
        self.done = asyncio.Event()

    @property
    def mode(self) -> BackendMode:
        return "attached"

    async def status(self) -> StationStatus:
        return StationStatus(station_name="bench", connected=True, procedures=[LinkedProcedure(id="p", name="Flood")])

    async def events(self) -> AsyncIterator[Event]:
        if not self.lines:
            self.done.set()
            await asyncio.Event().wait()
        yield RunStarted(execution_id=EXEC, seq=1, procedure=ProcedureRef(name="Flood", version="1"))
        yield PhaseStarted(execution_id=EXEC, seq=2, phase_key="flood", phase_name="Flood")
        for n in range(self.lines):
            self.produced += 1
            yield PhaseLog(
                execution_id=EXEC,
                seq=3 + n,
                phase_key="flood",
                level=LEVELS[n % len(LEVELS)],  # type: ignore[arg-type]
                message=f"sample {n} adc=0x{n * 2654435761 % 65536:04x} vbus=12.{n % 97:02d} V",
            )
        self.done.set()
        await asyncio.Event().wait()

    async def send(self, command: Command) -> str | None:
        return None

    async def close(self) -> None:
        pass


async def measure(lines: int, presses: int, gap_s: float) -> dict[str, Any]:
    backend = FloodBackend(lines)
    app = StationConsole(backend, status_interval=3600, freeze_gc=True)
    frames: list[float] = []
    actions: list[float] = []
    original_display = app._display
    original_cycle = app.action_cycle_level

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        original_display(screen, renderable)

    def cycle() -> None:
        original_cycle()
        actions.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    app.action_cycle_level = cycle  # type: ignore[method-assign]
    process = psutil.Process()
    peak_rss = process.memory_info().rss
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        for _ in range(presses):
            if lines and backend.done.is_set():
                break
            pressed = time.perf_counter()
            seen_actions = len(actions)
            assert app._driver is not None
            app._driver.send_message(events.Key("l", "l"))
            deadline = pressed + 5.0
            latency = None
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
                if len(actions) > seen_actions and frames and frames[-1] >= actions[seen_actions]:
                    latency = next(f for f in frames if f >= actions[seen_actions]) - pressed
                    break
            latencies.append(latency if latency is not None else 5.0)
            peak_rss = max(peak_rss, process.memory_info().rss)
            await asyncio.sleep(gap_s)
        await asyncio.wait_for(backend.done.wait(), timeout=600)
        drained = time.perf_counter() - started
        await pilot.pause()
        app.flush()
        peak_rss = max(peak_rss, process.memory_info().rss)
        buffer = app.state.log
        result = {
            "lines": lines,
            "produced": backend.produced,
            "presses": len(latencies),
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": sorted(latencies)[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
            "max_ms": max(latencies) * 1000,
            "drain_s": drained,
            "peak_rss_mb": peak_rss / 2**20,
            "scrollback": len(buffer.lines),
            "capacity": buffer.capacity,
            "total_logged": buffer.total,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=20)
    args = parser.parse_args()
    idle = asyncio.run(measure(0, args.presses, args.gap_ms / 1000))
    flood = asyncio.run(measure(args.lines, 10**6, args.gap_ms / 1000))
    print(f"console key-to-screen latency ({psutil.cpu_count()} CPUs, load {psutil.getloadavg()[0]:.1f})")
    print(f"  idle  (peer): {idle['presses']:4d} presses  p50 {idle['p50_ms']:6.1f} ms  p99 {idle['p99_ms']:6.1f} ms  max {idle['max_ms']:6.1f} ms")
    print(
        f"  flood       : {flood['presses']:4d} presses  p50 {flood['p50_ms']:6.1f} ms  p99 {flood['p99_ms']:6.1f} ms  max {flood['max_ms']:6.1f} ms"
        f"   (target p99 < 100 ms)"
    )
    print(
        f"  flood of {flood['produced']:,} lines drained in {flood['drain_s']:.2f} s "
        f"({flood['produced'] / flood['drain_s']:,.0f} lines/s)"
    )
    print(
        f"  scrollback kept {flood['scrollback']:,} of {flood['total_logged']:,} lines (capacity {flood['capacity']:,})"
        f"; peak RSS {flood['peak_rss_mb']:.0f} MB (target < 250 MB)"
    )
    ok = flood["p99_ms"] < 100 and flood["peak_rss_mb"] < 250 and flood["scrollback"] <= flood["capacity"] * 1.1
    print("  result:", "within targets" if ok else "OUTSIDE targets")


if __name__ == "__main__":
    main()

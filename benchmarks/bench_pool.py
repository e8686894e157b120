"""Micro-benchmark of the worker pool: per-attempt overhead of trivial phases.

Usage: python benchmarks/bench_pool.py [N]
Prints the worker start-up time and the median per-attempt time over N trivial
phases (each sets one measurement), run one after another on one worker, and on
`workers` workers in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchkit import pin_interpreter

from tofu_tui.procedure.load import load_procedure
from tofu_tui.procedure.pool import AttemptRequest, WorkerPool


def write(folder: Path, n: int) -> None:
    phases = "\n".join(
        f"  - {{name: p{i}, python: phases.trivial:trivial, measurements: "
        f"[{{name: v, validators: [{{operator: '>=', expected_value: 0}}]}}]}}"
        for i in range(n)
    )
    (folder / "procedure.yaml").write_text(f"name: bench\nmain:\n{phases}\n")
    (folder / "phases").mkdir()
    (folder / "phases" / "trivial.py").write_text("def trivial(measurements):\n    measurements.v = 1\n")


async def run(folder: Path, n: int, workers: int) -> None:
    loaded = load_procedure(folder)
    events: list[object] = []
    t0 = time.perf_counter()
    pool = WorkerPool(loaded, workers, events.append, prestart=workers)
    await pool.start()
    first = await pool.run_attempt(request(loaded.spec.main[0], 0))
    startup = time.perf_counter() - t0
    assert first.error is None, first.error

    times: list[float] = []
    t1 = time.perf_counter()
    for i, phase in enumerate(loaded.spec.main):
        s = time.perf_counter()
        result = await pool.run_attempt(request(phase, i))
        times.append(time.perf_counter() - s)
        assert result.error is None and result.measurements, result.error
    sequential = time.perf_counter() - t1

    t2 = time.perf_counter()
    results = await asyncio.gather(
        *(pool.run_attempt(request(p, i)) for i, p in enumerate(loaded.spec.main))
    )
    parallel = time.perf_counter() - t2
    assert all(r.error is None for r in results)
    await pool.close()
    print(
        f"workers={workers}: first attempt incl. worker start {startup * 1000:.1f} ms; "
        f"{n} sequential attempts: median {statistics.median(times) * 1000:.3f} ms, "
        f"mean {sequential / n * 1000:.3f} ms per attempt; "
        f"{n} concurrent: {parallel / n * 1000:.3f} ms per attempt"
    )


def request(phase: object, i: int) -> AttemptRequest:
    return AttemptRequest(
        phase=phase,  # type: ignore[arg-type]
        slot=None,
        retry_count=0,
        retry_limit=3,
        deadline=None,
        unit={"serial_number": "SN1", "sub_units": {}, "metadata": {}},
        run_metadata={},
        results={},
        plugs={},
        slot_id="default",
        job_id=f"job{i}",
    )


async def flood(folder: Path, lines: int) -> None:
    (folder / "procedure.yaml").write_text("name: flood\nmain:\n  - {name: flood, python: phases.flood}\n")
    (folder / "phases").mkdir()
    (folder / "phases" / "flood.py").write_text(
        f"def flood():\n    for i in range({lines}):\n        print(f'line {{i}} of the flood')\n"
    )
    loaded = load_procedure(folder)
    events: list[object] = []
    async with WorkerPool(loaded, 1, events.append) as pool:
        t0 = time.perf_counter()
        result = await pool.run_attempt(request(loaded.spec.main[0], 0))
        took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{lines} printed lines: {took:.2f} s, {len(result.logs)} log lines kept, "
        f"{len(events)} live events, engine peak RSS {peak:.0f} MB"
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def openhtf_per_phase(n: int) -> None:
    """The peer: the same trivial phases run in-process by OpenHTF, for comparison."""
    try:
        import openhtf as htf
    except ImportError:
        print("openhtf not installed: no peer figure")
        return
    import logging

    logging.getLogger("openhtf").setLevel(logging.CRITICAL)

    def make(i: int) -> object:
        @htf.measures(htf.Measurement("v").in_range(minimum=0))
        def trivial(test: object) -> None:
            test.measurements.v = 1  # type: ignore[attr-defined]

        return htf.PhaseOptions(name=f"p{i}")(trivial)

    for count in (1, n):
        test = htf.Test(*[make(i) for i in range(count)])
        t0 = time.perf_counter()
        with _quiet():  # its end-of-test banner
            test.execute(test_start=lambda: "SN1")
        took = time.perf_counter() - t0
        if count == n:
            print(f"openhtf (peer, in-process): {n} phases in {took * 1000:.0f} ms, "
                  f"{took / n * 1000:.3f} ms per phase")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pin_interpreter(folder)
        write(folder, n)
        asyncio.run(run(folder, n, 1))
        asyncio.run(run(folder, n, 4))
    openhtf_per_phase(n)
    with tempfile.TemporaryDirectory() as tmp:
        pin_interpreter(Path(tmp))
        asyncio.run(flood(Path(tmp), 1_000_000))


if __name__ == "__main__":
    main()

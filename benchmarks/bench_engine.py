"""Engine benchmark: `tofu-tui run` against OpenHTF on the same work, side by side.

For N = 1, 100 and 500 trivial phases, each setting one measurement with a range
validator, it builds a tofu-tui procedure and an equivalent OpenHTF test, runs each as a
whole process several times (the two interleaved), and prints the median wall and CPU
time of each, their ratios and the per-phase overhead; then the same for `workers: 8`
with independent phases; then the peak RSS of the station process (and its children)
while a phase prints one million lines; then the round trip of an operator prompt
answered over stdin (`--json` mode).

    python benchmarks/bench_engine.py [--repeat 5] [--sizes 1,100,500]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from benchkit import pin_interpreter

REPO = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def tofu_procedure(root: Path, n: int, workers: int) -> Path:
    folder = root / f"tofu_{n}_{workers}"
    (folder / "phases").mkdir(parents=True, exist_ok=True)
    # One small module per phase, the usual layout: a phase module loads fresh on every
    # attempt (§2.3), so one 500-function file would be recompiled 500 times.
    for i in range(n):
        (folder / "phases" / f"p{i}.py").write_text(
            f"def p{i}(measurements):\n    measurements.m{i} = 5.0\n", encoding="utf-8"
        )
    lines = [
        "name: Bench",
        "unit: {auto_identify: true, serial_number: {default_value: SN1}, part_number: {default_value: PN1}}",
        f"execution: {{workers: {workers}}}",
        "main:",
    ]
    for i in range(n):
        lines.append(
            f"  - {{name: p{i}, python: 'phases.p{i}:p{i}', measurements: "
            f"[{{name: m{i}, validators: [{{operator: '>=', expected_value: 0}}, "
            f"{{operator: '<=', expected_value: 10}}]}}]}}"
        )
    (folder / "procedure.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def openhtf_script(root: Path, n: int) -> Path:
    path = root / f"htf_{n}.py"
    body = ["import openhtf as htf", ""]
    for i in range(n):
        body.append(f"@htf.measures(htf.Measurement('m{i}').in_range(0, 10))")
        body.append(f"def p{i}(test):\n    test.measurements.m{i} = 5.0\n")
    body.append(
        textwrap.dedent(
            f"""
            if __name__ == "__main__":
                test = htf.Test({", ".join(f"p{i}" for i in range(n))})
                ok = test.execute(test_start=lambda: "SN1")
                raise SystemExit(0 if ok else 1)
            """
        )
    )
    path.write_text("\n".join(body), encoding="utf-8")
    return path


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the process and its children) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env(), text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark run failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def side_by_side(a: list[str], b: list[str], repeat: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians (wall, cpu) of each command, the runs interleaved so that load from other
    processes on the machine falls on both alike."""
    timed(a)  # warm the file cache and bytecode
    timed(b)
    runs_a, runs_b = [], []
    for _ in range(repeat):
        runs_a.append(timed(a))
        runs_b.append(timed(b))

    def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    return medians(runs_a), medians(runs_b)


def tofu_argv(folder: Path) -> list[str]:
    return [sys.executable, "-m", "tofu_tui", "run", str(folder), "--json"]


def compare(root: Path, sizes: list[int], repeat: int, workers: int) -> None:
    results: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}
    print(f"\n== {workers} worker{'s' if workers != 1 else ''} (independent phases) ==")
    print(f"{'N':>5} {'tofu-tui s':>11} {'OpenHTF s':>10} {'ratio':>6}   {'CPU s: tofu-tui':>16} {'OpenHTF':>8} {'ratio':>6}")
    for n in sizes:
        tofu, htf = side_by_side(
            tofu_argv(tofu_procedure(root, n, workers)), [sys.executable, str(openhtf_script(root, n))], repeat
        )
        results[n] = (tofu, htf)
        print(
            f"{n:>5} {tofu[0]:>11.3f} {htf[0]:>10.3f} {tofu[0] / htf[0]:>6.2f}   "
            f"{tofu[1]:>16.3f} {htf[1]:>8.3f} {tofu[1] / htf[1]:>6.2f}",
            flush=True,
        )
    lo = min(sizes)
    for hi in sorted(sizes):
        if hi == lo:
            continue
        per = [(results[hi][k][i] - results[lo][k][i]) / (hi - lo) * 1000 for k in (0, 1) for i in (0, 1)]
        print(
            f"per-phase overhead N={lo}->{hi}: wall tofu-tui {per[0]:.2f} ms, OpenHTF {per[2]:.2f} ms; "
            f"CPU tofu-tui {per[1]:.2f} ms, OpenHTF {per[3]:.2f} ms"
        )


def peak_rss(root: Path, lines: int) -> None:
    folder = root / "flood"
    (folder / "phases").mkdir(parents=True, exist_ok=True)
    (folder / "phases" / "flood.py").write_text(
        f"import sys\n\ndef flood():\n    for i in range({lines}):\n        print(f'line {{i}} of a very chatty phase')\n",
        encoding="utf-8",
    )
    (folder / "procedure.yaml").write_text(
        "name: Flood\nunit: {auto_identify: true, serial_number: {default_value: SN1}, "
        "part_number: {default_value: PN1}}\nmain: [{name: Flood, python: 'phases.flood:flood'}]\n",
        encoding="utf-8",
    )
    for mode in (["--json"], []):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tofu_tui", "run", str(folder), *mode],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_env(),
        )
        station = psutil.Process(proc.pid)
        peak_main = peak_tree = 0
        while proc.poll() is None:
            try:
                main_rss = station.memory_info().rss
                tree = main_rss + sum(c.memory_info().rss for c in station.children(recursive=True))
            except psutil.Error:
                continue
            peak_main = max(peak_main, main_rss)
            peak_tree = max(peak_tree, tree)
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        label = "--json" if mode else "human view"
        print(
            f"{lines:,} printed lines ({label}): exit {proc.returncode}, {elapsed:.1f} s, peak RSS "
            f"station {peak_main / 2**20:.0f} MB, station + workers {peak_tree / 2**20:.0f} MB"
        )


def prompt_round_trip(root: Path, prompts: int) -> None:
    """A prompt answered over stdin: from reading `ui_request` to reading its `ui_closed`."""
    import json

    folder = root / "prompts"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "name: Prompts",
        "unit: {auto_identify: true, serial_number: {default_value: SN1}, part_number: {default_value: PN1}}",
        "execution: {workers: 1}",
        "main:",
    ]
    for i in range(prompts):
        lines.append(f"  - {{name: q{i}, ui: {{components: [{{type: switch, key: ok, required: true}}]}}}}")
    (folder / "procedure.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "run", str(folder), "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    sent: dict[str, float] = {}
    trips: list[float] = []
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "ui_request":
            sent[event["request_id"]] = time.perf_counter()
            answer = {"type": "ui_response", "request_id": event["request_id"], "values": {"ok": True}}
            proc.stdin.write(json.dumps(answer) + "\n")
            proc.stdin.flush()
        elif event["type"] == "ui_closed" and event["request_id"] in sent:
            trips.append(time.perf_counter() - sent.pop(event["request_id"]))
        elif event["type"] == "run_finished":
            break
    proc.stdin.close()
    proc.wait()
    trips.sort()
    p99 = trips[min(len(trips) - 1, int(len(trips) * 0.99))]
    print(
        f"prompt answered over stdin ({len(trips)} prompts): median {statistics.median(trips) * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms (exit {proc.returncode})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1,100,500")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--prompts", type=int, default=500)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeat} whole-process runs")
    # An installed package has its bytecode compiled (pip does it), as OpenHTF's has; a
    # checkout under PYTHONDONTWRITEBYTECODE would recompile tofu_tui on every run.
    compileall.compile_dir(REPO / "tofu_tui", quiet=1)
    with tempfile.TemporaryDirectory(prefix="tofu-bench-") as tmp:
        root = Path(tmp)
        pin_interpreter(root)
        compare(root, sizes, args.repeat, workers=1)
        compare(root, sizes, args.repeat, workers=8)
        print()
        peak_rss(root, args.lines)
        prompt_round_trip(root, args.prompts)


if __name__ == "__main__":
    main()

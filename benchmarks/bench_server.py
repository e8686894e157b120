"""`runs.create` on the local dashboard: throughput and latency on SQLite.

Starts `tofu-tui server start` as its own process on a free loopback port, then posts a
realistic run (10 phases x 5 measurements, validators, logs) through httpx with
keep-alive from 1 and from 8 concurrent clients, and the same through TofuPilot's
official client as the peer. Target: at least 300 runs/s with 8 clients.

    python benchmarks/bench_server.py [--runs 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
TARGET_RUNS_PER_SECOND = 300


def payload(procedure_id: str) -> dict[str, Any]:
    t0 = datetime.now(UTC)
    return {
        "outcome": "PASS",
        "procedure_id": procedure_id,
        "started_at": t0.isoformat(),
        "ended_at": (t0 + timedelta(seconds=11)).isoformat(),
        "serial_number": f"SN-{uuid.uuid4().hex[:8]}",
        "part_number": "PCB-100",
        "revision_number": "C",
        "client_run_ref": f"bench_{uuid.uuid4().hex}",
        "metadata": {"fixture": "F1", "temperature": 23.4},
        "phases": [
            {
                "name": f"phase_{p}",
                "outcome": "PASS",
                "started_at": (t0 + timedelta(seconds=p)).isoformat(),
                "ended_at": (t0 + timedelta(seconds=p + 1)).isoformat(),
                "measurements": [
                    {
                        "name": f"voltage_{p}_{m}",
                        "outcome": "PASS",
                        "measured_value": 3.3 + m * 0.01,
                        "units": "V",
                        "validators": [
                            {"operator": ">=", "expected_value": 3.0, "outcome": "PASS"},
                            {"operator": "<=", "expected_value": 3.6, "outcome": "PASS"},
                        ],
                    }
                    for m in range(5)
                ],
            }
            for p in range(10)
        ],
        "logs": [
            {"level": "INFO", "timestamp": t0.isoformat(), "message": f"step {i}", "source_file": "main.py", "line_number": i}
            for i in range(10)
        ],
    }


def start_server(data: Path) -> tuple[subprocess.Popen[str], str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    subprocess.run([sys.executable, "-m", "tofu_tui", "server", "init", "--data", str(data), "--json"], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "server", "start", "--data", str(data), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split("listening on ")[1].split()[0]
    key = (data / "admin.toml").read_text().split('api_key = "')[1].split('"')[0]
    return proc, url, key


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def measure(name: str, clients: int, total: int, make_poster: Callable[[], Callable[[], None]], server: psutil.Process) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = total // clients
    posters = [make_poster() for _ in range(clients)]
    for poster in posters:  # warm up each connection
        poster()

    def work(poster: Callable[[], None]) -> None:
        mine = []
        for _ in range(per_client):
            t = time.perf_counter()
            poster()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    cpu_before = cpu_seconds(server)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, posters))
    elapsed = time.perf_counter() - start
    server_cpu = cpu_seconds(server) - cpu_before
    latencies.sort()
    return {
        "name": name,
        "clients": clients,
        "runs": len(latencies),
        "runs_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        # CPU the server spent per run: what the throughput would be with a core to itself,
        # whatever else loads the machine.
        "server_cpu_ms": server_cpu / len(latencies) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="runs per measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, key = start_server(Path(tmp) / "server")
        try:
            headers = {"Authorization": f"Bearer {key}"}
            procedure_id = httpx.post(url + "/api/v2/procedures", json={"name": "bench"}, headers=headers).json()["id"]
            body_size = len(httpx.Request("POST", url, json=payload(procedure_id)).read())

            def httpx_poster() -> Callable[[], None]:
                client = httpx.Client(base_url=url, headers=headers, timeout=30)

                def post() -> None:
                    response = client.post("/api/v2/runs", json=payload(procedure_id))
                    response.raise_for_status()

                return post

            def official_poster() -> Callable[[], None]:
                from tofupilot.v2 import TofuPilot

                # Keep the client itself referenced: it closes its HTTP pool when collected.
                client = TofuPilot(api_key=key, server_url=url + "/api")

                def post() -> None:
                    client.runs.create(**payload(procedure_id))

                return post

            server = psutil.Process(proc.pid)
            results = []
            for clients in (1, 8):
                results.append(measure("httpx keep-alive", clients, args.runs, httpx_poster, server))
                results.append(measure("official client", clients, args.runs, official_poster, server))
        finally:
            proc.terminate()
            proc.wait(timeout=15)

    load = os.getloadavg()[0]
    print(f"runs.create, SQLite, payload {body_size} bytes (10 phases x 5 measurements), {os.cpu_count()} cores, load {load:.1f}")
    print(f"{'client':<18}{'conc':>5}{'runs':>6}{'runs/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv cpu ms/run':>16}")
    for r in results:
        print(
            f"{r['name']:<18}{r['clients']:>5}{r['runs']:>6}{r['runs_per_s']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['server_cpu_ms']:>16.2f}"
        )
    best = max(r["runs_per_s"] for r in results if r["clients"] == 8 and r["name"] == "httpx keep-alive")
    verdict = "meets" if best >= TARGET_RUNS_PER_SECOND else "misses"
    print(f"8 clients over httpx: {best:.0f} runs/s, {verdict} the {TARGET_RUNS_PER_SECOND} runs/s target")
    cpu = min(r["server_cpu_ms"] for r in results if r["clients"] == 8 and r["name"] == "httpx keep-alive")
    print(f"server CPU per run {cpu:.2f} ms: at most {1000 / cpu:.0f} runs/s from the server's one core")


if __name__ == "__main__":
    main()

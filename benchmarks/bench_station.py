"""Station benchmarks, against the real local server (a `tofu-tui server start` process).

1. Drain a backlog of N queued runs (default 10,000): runs/s and the drainer's peak RSS,
   next to a peer in the same run: the same N bodies POSTed by a bare httpx loop (no
   queue, no persistence), so the cost of persist-first is visible as a ratio.
2. Deploy latency: from `POST /v2/deployments` to the daemon reporting the new version
   active (target under 2 s for a small repository on loopback), median of K.
3. Idle daemon: CPU (% of one core) and RSS over S seconds (targets: under 1 %, under 80 MB).

    python benchmarks/bench_station.py [--backlog 10000] [--deploys 5] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import run_cli  # noqa: E402
from tests.station.daemonproc import Daemon  # noqa: E402
from tests.station.gitrepo import Repo  # noqa: E402
from tests.station.realserver import RealServer  # noqa: E402


def body(procedure_id: str, i: int) -> dict[str, object]:
    return {"outcome": "PASS", "procedure_id": procedure_id, "started_at": "2026-01-01T10:00:00.000Z",
            "ended_at": "2026-01-01T10:00:01.000Z", "serial_number": f"SN{i:06d}",
            "phases": [{"name": "check", "outcome": "PASS", "started_at": "2026-01-01T10:00:00.000Z",
                        "ended_at": "2026-01-01T10:00:01.000Z",
                        "measurements": [{"name": "v", "outcome": "PASS", "measured_value": 3.3}]}]}


class PeakRss:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def enroll(server: RealServer, home: Path, work: Path) -> tuple[str, str, Repo]:
    station_id, token = server.station(f"bench-{home.name}")
    login = run_cli(["login", "--url", server.url], env={"TOFU_TUI_HOME": str(home), "TOFU_TUI_TOKEN": token})
    assert login.returncode == 0, login.stderr
    repo = Repo(work / f"repo-{home.name}")
    repo.procedure("v1")
    procedure_id = server.procedure(f"Bench {home.name}", repo.url, station_id)
    return station_id, procedure_id, repo


def bench_drain(server: RealServer, work: Path, backlog: int) -> None:
    from tofu_tui.station.enroll import client_for
    from tofu_tui.station.paths import station_paths
    from tofu_tui.station.queue import Drainer, UploadQueue

    home = work / "drain"
    _station, procedure_id, _repo = enroll(server, home, work)
    paths = station_paths(home)
    config, client = client_for(paths)
    queue = UploadQueue(paths, config.installation_id)
    t0 = time.perf_counter()
    for i in range(backlog):
        queue.enqueue(body(procedure_id, i))
    enqueue_s = time.perf_counter() - t0
    with PeakRss() as rss:
        t0 = time.perf_counter()
        assert Drainer(queue, client, lambda e: None).drain() is None
        drain_s = time.perf_counter() - t0
    key = client._http.headers["Authorization"]
    with httpx.Client(base_url=server.url + "/api", headers={"Authorization": key}, timeout=30) as bare:
        t0 = time.perf_counter()
        for i in range(backlog):
            bare.post("/v2/runs", json=body(procedure_id, backlog + i)).raise_for_status()
        bare_s = time.perf_counter() - t0
    print(f"enqueue {backlog} runs (persist first):   {backlog / enqueue_s:8.0f} runs/s")
    print(f"drain {backlog} runs to the server:       {backlog / drain_s:8.0f} runs/s  "
          f"(peak RSS {rss.peak / 1e6:.0f} MB)")
    print(f"peer: bare httpx POST loop, same bodies:  {backlog / bare_s:8.0f} runs/s  "
          f"-> drain/peer = {bare_s / drain_s:.2f}")


def bench_deploy(server: RealServer, work: Path, deploys: int) -> None:
    home = work / "deploy"
    _station, procedure_id, repo = enroll(server, home, work)
    server.deploy(procedure_id)
    daemon = Daemon(home)
    try:
        daemon.event("deployment_pulled", status="active")
        latencies = []
        for i in range(deploys):
            repo.procedure(f"v{i + 2}")
            t0 = time.perf_counter()
            deployment_id = server.deploy(procedure_id)
            daemon.event("deployment_pulled", deployment_id=deployment_id, status="active", timeout=60)
            latencies.append(time.perf_counter() - t0)
        print(f"deploy -> active on the station: median {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s over {deploys} (target < 2 s)")
    finally:
        daemon.stop()


def bench_idle(server: RealServer, work: Path, seconds: float) -> None:
    home = work / "idle"
    _station, procedure_id, _repo = enroll(server, home, work)
    server.deploy(procedure_id)
    daemon = Daemon(home)
    try:
        daemon.event("deployment_pulled", status="active")
        time.sleep(2)
        proc = psutil.Process(daemon.proc.pid)
        before = proc.cpu_times()
        t0 = time.perf_counter()
        peak = 0
        while time.perf_counter() - t0 < seconds:
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.5)
        after = proc.cpu_times()
        elapsed = time.perf_counter() - t0
        # Clock-tick counters: a float sum of equal ticks can come out as -0.0.
        cpu = max(0.0, (after.user + after.system - before.user - before.system) / elapsed * 100)
        print(f"idle daemon over {elapsed:.0f} s: CPU {cpu:.2f} % of a core (target < 1 %), "
              f"peak RSS {peak / 1e6:.0f} MB (target < 80 MB)")
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = RealServer(work / "server").start()
        try:
            bench_drain(server, work, args.backlog)
            bench_deploy(server, work, args.deploys)
            bench_idle(server, work, args.idle_seconds)
        finally:
            server.close()


if __name__ == "__main__":
    main()

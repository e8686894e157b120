"""Plug call round trip (issue 3): median and p99 over 10,000 calls through the proxy a
phase gets, against a bare JSON-lines echo over the same kind of socket as the peer.

    python benchmarks/bench_plugs.py [--calls 10000]

Target: a plug call under 0.3 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import pin_interpreter

from tofu_tui.procedure.load import load_procedure
from tofu_tui.procedure.plughost import make_proxy
from tofu_tui.procedure.plugs import PlugManager

PLUG = "class Meter:\n    def read(self, channel):\n        return channel * 1.5\n"


def figures(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def bare_echo(calls: int) -> list[float]:
    """The peer: one JSON line each way over a Unix socket (TCP on Windows), no plug."""
    family = getattr(socket, "AF_UNIX", socket.AF_INET)
    directory = tempfile.mkdtemp(prefix="tfb-", dir="/tmp" if os.path.isdir("/tmp") else None)
    server = socket.socket(family, socket.SOCK_STREAM)
    target: object = os.path.join(directory, "s") if family != socket.AF_INET else ("127.0.0.1", 0)
    server.bind(target)  # type: ignore[arg-type]
    server.listen(1)
    address = server.getsockname() if family == socket.AF_INET else target

    def serve() -> None:
        conn, _ = server.accept()
        reader = conn.makefile("rb")
        for line in reader:
            message = json.loads(line)
            conn.sendall(json.dumps({"ok": True, "result": message["args"][0] * 1.5}).encode() + b"\n")

    threading.Thread(target=serve, daemon=True).start()
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(address)  # type: ignore[arg-type]
    reader = client.makefile("rb")
    samples = []
    for index in range(calls):
        start = time.perf_counter()
        client.sendall(json.dumps({"op": "call", "method": "read", "args": [index]}).encode() + b"\n")
        json.loads(reader.readline())
        samples.append(time.perf_counter() - start)
    client.close()
    return samples


async def plug_calls(calls: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pin_interpreter(directory)
        (directory / "plugs").mkdir()
        (directory / "plugs" / "meter.py").write_text(PLUG)
        (directory / "procedure.yaml").write_text(
            "name: Bench\nplugs: [{name: Meter, python: 'plugs/meter.py:Meter', scope: execution}]\nmain: [{name: A}]\n"
        )
        manager = PlugManager(load_procedure(directory), log_dir=directory / "logs")
        await manager.start_execution()
        try:
            meter = make_proxy("meter", dataclasses.asdict(manager.addresses(None)["meter"]), 600)
            meter.read(0)  # connect outside the measurement
            samples = []
            for index in range(calls):
                start = time.perf_counter()
                meter.read(index)
                samples.append(time.perf_counter() - start)
            return samples
        finally:
            await manager.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    calls = parser.parse_args().calls
    plug_median, plug_p99 = figures(asyncio.run(plug_calls(calls)))
    echo_median, echo_p99 = figures(bare_echo(calls))
    print(f"plug call round trip over {calls} calls")
    print(f"  tofu-tui plug proxy : median {plug_median:.3f} ms   p99 {plug_p99:.3f} ms")
    print(f"  bare JSON echo peer : median {echo_median:.3f} ms   p99 {echo_p99:.3f} ms")
    print(f"  ratio (median)      : {plug_median / echo_median:.2f}x the bare echo")
    verdict = "meets" if plug_median < 0.3 else "MISSES"
    print(f"  target < 0.3 ms median: {verdict}")


if __name__ == "__main__":
    main()

"""Soak: kill -9 the station daemon at random moments during runs and uploads, N times
(default 50), against the real local server; then check every finished run reached
the server exactly once. Prints the figures; exits 1 on any loss or duplicate.

    python benchmarks/soak_station_kill9.py [--kills 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.station.killloop import kill_loop  # noqa: E402
from tests.station.realserver import RealServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = RealServer(work / "server").start()
        try:
            result = kill_loop(server, work / "station", work, kills=args.kills, seed=args.seed)
        finally:
            server.close()
    print(f"kill -9 x{result.kills} in {result.seconds:.0f} s: {result.runs_finished} runs finished on the station, "
          f"{result.runs_on_server} on the server, {result.missing} missing, {result.duplicates} duplicated, "
          f"{result.attachment_anomalies} attachment anomalies (runs without exactly one, hidden records)")
    return 0 if result.missing == 0 and result.duplicates == 0 and result.attachment_anomalies == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

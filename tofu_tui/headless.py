"""`tofu-tui --headless`: the unattended station daemon (placeholder)."""

from __future__ import annotations

import sys


def run_daemon() -> int:
    print("tofu-tui --headless: the station daemon is not available yet.", file=sys.stderr)
    return 2

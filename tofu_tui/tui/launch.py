"""Start the operator console (placeholder)."""

from __future__ import annotations

import sys


def run_console() -> int:
    print("tofu-tui: the operator console is not available yet.", file=sys.stderr)
    return 2

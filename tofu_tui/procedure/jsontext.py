"""JSON from outside the engine (workers, plugs, stdin answers, --ui-values) decoded
without lone UTF-16 surrogates.

Python's json turns an escaped lone surrogate (`"\\udcff"`, what a phase printing
undecodable bytes produces) into a str no UTF-8 writer accepts: the event stream, the
payload and the upload queue would all fail on it. Such characters become U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ESCAPED = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE = re.compile("[\ud800-\udfff]")


def scrub(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE.sub("\ufffd", value)
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    return value


def loads(raw: bytes | str) -> Any:
    """json.loads, scrubbed when the text escapes any surrogate (valid pairs decode whole)."""
    value = json.loads(raw)
    if isinstance(raw, bytes):  # the hot path (worker lines): one fast scan when no `\u` at all
        return scrub(value) if b"\\u" in raw and _ESCAPED.search(raw) else value
    if _LONE.search(raw) or ("\\u" in raw and _ESCAPED.search(raw.encode("utf-8", "surrogatepass"))):
        return scrub(value)
    return value

"""Keys derived from human names (`to_identifier`, procedure-format §2) and key validity."""

from __future__ import annotations

import re

_TRANSLITERATE = str.maketrans(
    {
        **dict.fromkeys("àáâãäå", "a"),
        **dict.fromkeys("èéêë", "e"),
        **dict.fromkeys("ìíîï", "i"),
        **dict.fromkeys("òóôõö", "o"),
        **dict.fromkeys("ùúûü", "u"),
        **dict.fromkeys("ýÿ", "y"),
        "ñ": "n",
        "ç": "c",
        "æ": "a",
        "œ": "o",
    }
)
_VALID_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_UNDERSCORES = re.compile(r"_+")


def to_identifier(text: str) -> str:
    """`Rail Ripple (mV)` -> `rail_ripple_mv`; `5V Bus` -> `_5v_bus`; may return ""."""
    lowered = text.strip().lower().translate(_TRANSLITERATE)
    kept: list[str] = []
    for char in lowered:
        if char in _ASCII_ALNUM:
            kept.append(char)
        elif char == "-" or char.isspace():
            kept.append("_")
    result = _UNDERSCORES.sub("_", "".join(kept)).strip("_")
    if result[:1].isdigit():
        result = "_" + result
    return result


def is_valid_key(key: str) -> bool:
    """A key usable from code: `[A-Za-z_][A-Za-z0-9_]*` (Python keywords allowed)."""
    return _VALID_KEY.fullmatch(key) is not None

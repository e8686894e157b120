"""Parsed procedure files, cached by content: a station runs the same `procedure.yaml`
for every unit, and parsing plus validating one costs far more than reading the result
back: about 0.15 ms a phase against 0.03 ms, and a hit never builds the schema's
validators at all (tens of milliseconds at start-up; the models are `defer_build`).

An entry is keyed by the file's text and by the engine code that parses it, so an edit
to either misses the cache. Only files that parsed cleanly are stored; the checks that
look at the disk (phase files, interpreter, link file) run on every load. The cache is
an optimisation only: an unreadable, corrupt or unwritable cache falls back to parsing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 128
_ENGINE_MODULES = ("schema.py", "load.py", "yaml_lines.py", "identifiers.py", "durations.py")
_fingerprint: bytes | None = None

_log = logging.getLogger(__name__)


def cache_root() -> Path:
    """tofu-tui's cache folder: parsed procedures, and the attachments of past runs."""
    override = os.environ.get("TOFU_TUI_CACHE_DIR")
    if override:
        return Path(override)
    home = os.environ.get("TOFU_TUI_HOME")
    if home:  # cli.md: TOFU_TUI_HOME holds all of a station's files, its cache too
        return Path(home).expanduser().absolute() / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("tofu-tui"))


def cache_dir() -> Path:
    return cache_root() / "procedures"


def _engine_fingerprint() -> bytes:
    """What identifies the parser: the versions of the package, pydantic and Python, and
    the stat data of its modules (an editable install changes its code without changing
    its version)."""
    global _fingerprint
    if _fingerprint is None:
        import sys

        from pydantic.version import VERSION as pydantic_version

        from tofu_tui import __version__

        here = Path(__file__).parent
        parts = [__version__, pydantic_version, sys.version, str(pickle.HIGHEST_PROTOCOL)]
        for name in _ENGINE_MODULES:
            try:
                st = (here / name).stat()
                parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                parts.append(f"{name}:?")
        _fingerprint = "|".join(parts).encode()
    return _fingerprint


def cached(text: str, parse: Callable[[], T]) -> T:
    """`parse()`'s result for this text, from the cache when it holds one."""
    if os.environ.get("TOFU_TUI_NO_CACHE"):
        return parse()
    try:
        folder = cache_dir()
    except Exception:  # no home directory, ...: just parse
        return parse()
    digest = hashlib.sha256(_engine_fingerprint() + b"\0" + text.encode("utf-8", "surrogatepass")).hexdigest()
    entry = folder / f"{digest}.pickle"
    try:
        with open(entry, "rb") as fh:
            value: T = pickle.load(fh)
        return value
    except FileNotFoundError:
        pass
    except Exception as exc:  # corrupt or from an incompatible build: parse and replace it
        _log.debug("procedure cache entry %s unusable (%s); parsing", entry, exc)
    value = parse()  # a procedure that does not parse raises here and is never stored
    _store(folder, entry, value)
    return value


def _store(folder: Path, entry: Path, value: Any) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, entry)  # readers see the whole entry or none
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(folder)
    except Exception as exc:  # disk full, read-only home: the run goes on uncached
        _log.debug("procedure cache not written (%s)", exc)


def _prune(folder: Path) -> None:
    entries = [p for p in folder.glob("*.pickle") if not p.name.startswith(".")]
    if len(entries) <= MAX_ENTRIES:
        return

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    for old in sorted(entries, key=mtime)[: len(entries) - MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            old.unlink()


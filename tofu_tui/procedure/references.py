"""Python references `PATH[:CALLABLE]` / `DOTTED.MODULE[:CALLABLE]` (procedure-format §2.3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tofu_tui.procedure.identifiers import is_valid_key

_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


class ReferenceError_(ValueError):
    """A reference that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class PythonReference:
    text: str                 # as written in the YAML
    file: Path                # the file it names (may not exist)
    module: str | None        # dotted module name for the import fallback; None for paths
    callable: str             # function (phase) or class (plug) name
    explicit_callable: bool   # written after `:`
    tree_bound: bool          # must be a file of the procedure tree (no import fallback)

    @property
    def callable_valid(self) -> bool:
        return is_valid_key(self.callable)


def _split(text: str) -> tuple[str, str | None]:
    """(path part, callable part or None); a leading Windows drive letter is not a separator."""
    offset = 2 if _DRIVE.match(text) else 0
    rest = text[offset:]
    if rest.count(":") > 1:
        raise ReferenceError_(f"{text!r} has more than one ':'; write PATH:CALLABLE or MODULE:CALLABLE")
    if ":" in rest:
        path, _, name = rest.partition(":")
        return text[:offset] + path, name
    return text, None


def parse_reference(
    text: str, directory: Path, kind: Literal["phase", "plug"] = "phase"
) -> PythonReference:
    """Resolve a reference against the procedure directory; raises on syntax errors only."""
    del kind  # both kinds default the callable to the file stem (Q10 for phases)
    path_part, name = _split(text.strip())
    if not path_part.strip():
        raise ReferenceError_(f"{text!r} has no module or path before the callable")
    if name is not None and not name.strip():
        raise ReferenceError_(f"{text!r} has an empty callable after ':'")
    path_part = path_part.strip()
    is_path = "/" in path_part or "\\" in path_part
    module: str | None = None
    if is_path:
        # Windows-style separators work on every platform.
        file = Path(path_part.replace("\\", "/")).expanduser()
        if not file.is_absolute():
            file = directory / file
        if file.suffix != ".py":
            file = file.with_name(file.name + ".py")
        stem = file.stem
    else:
        if ".." in path_part:
            raise ReferenceError_(f"{text!r}: '..' is not allowed in a dotted module name")
        dotted = path_part
        segments = dotted.split(".")
        if any(not segment for segment in segments[1:]):
            raise ReferenceError_(f"{text!r} has an empty module segment")
        if path_part.startswith("~"):
            file = Path(dotted.replace(".", "/")).expanduser()
            file = file.with_name(file.name + ".py")
        else:
            file = directory.joinpath(*[segment for segment in segments if segment]).with_suffix("")
            file = file.with_name(file.name + ".py")
            module = dotted.lstrip(".") or None
        stem = segments[-1]
    callable_name = name.strip() if name is not None else stem
    if name is not None and not is_valid_key(callable_name):
        raise ReferenceError_(
            f"{text!r}: {callable_name!r} is not a valid Python name (letters, digits and _, not starting with a digit)"
        )
    first_segment = path_part.split(".")[0]
    tree_bound = (
        is_path
        or path_part.startswith(("~", "."))
        or (bool(first_segment) and (directory / first_segment).is_dir())
    )
    return PythonReference(
        text=text,
        file=file,
        module=None if is_path else module,
        callable=callable_name,
        explicit_callable=name is not None,
        tree_bound=tree_bound,
    )


def colon_hint(text: str, directory: Path) -> str | None:
    """For `a.b.C` whose file is missing: `a.b:C`, if that reading makes sense."""
    if ":" in text or "/" in text or "\\" in text or "." not in text:
        return None
    module, _, last = text.rpartition(".")
    if not module or not is_valid_key(last):
        return None
    alternative = directory.joinpath(*module.split(".")).with_suffix("")
    alternative = alternative.with_name(alternative.name + ".py")
    if alternative.is_file() or last[:1].isupper():
        return f"{module}:{last}"
    return None

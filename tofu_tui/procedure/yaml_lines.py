"""YAML with line numbers: procedure.yaml as plain Python data, plus the 1-based line of
every key and list item, so a problem can be reported as `file:line: field: problem`.

Its own module so that a run whose procedure comes from the parsed-procedure cache
never imports the YAML library at all.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

Loc = tuple[Any, ...]


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """YAML 1.2 core scalars: `yes`, `no`, `on`, `off` and dates stay text, `010` is ten
    (PyYAML follows YAML 1.1, where `value: no` would be a bool)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class YamlProblem(Exception):
    def __init__(self, line: int | None, message: str, loc: Loc = ()) -> None:
        super().__init__(message)
        self.line = line
        self.loc = loc
        self.message = message


def parse_yaml(text: str) -> tuple[Any, dict[Loc, int]]:
    """The document as plain Python data, and the 1-based line of every key and item."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            detail = exc.problem or str(exc)
            if exc.context:
                started = exc.context_mark
                if started is not None and mark is not None and started.line != mark.line:
                    detail = f"{detail} ({exc.context} that started on line {started.line + 1})"
                else:
                    detail = f"{detail} ({exc.context})"
            column = f" at column {mark.column + 1}" if mark is not None else ""
            text_lines = text.splitlines()
            if mark is not None and mark.line < len(text_lines) and "\t" in text_lines[mark.line]:
                detail += "; this line has a tab: indent with spaces"
            raise YamlProblem(line, f"invalid YAML{column}: {detail}") from None
        except yaml.YAMLError as exc:
            raise YamlProblem(None, f"invalid YAML: {exc}") from None
        lines: dict[Loc, int] = {}
        if node is None:
            return None, lines
        try:
            return _Converter(loader, lines).convert(node, ()), lines
        except yaml.MarkedYAMLError as exc:  # e.g. an unknown `!!tag`
            mark = exc.problem_mark or exc.context_mark
            raise YamlProblem(
                mark.line + 1 if mark is not None else None, f"invalid YAML: {exc.problem or exc.context}"
            ) from None
    finally:
        loader.dispose()


_MAX_NODES = 200_000  # aliases can expand a small file enormously ("billion laughs")


class _Converter:
    """Nodes to plain data, recording the line of every mapping key and list item."""

    def __init__(self, loader: _Loader, lines: dict[Loc, int]) -> None:
        self.loader = loader
        self.lines = lines
        self.active: set[int] = set()  # nodes being converted: an alias to one is a cycle
        self.count = 0

    def convert(self, node: yaml.Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise YamlProblem(
                self.lines.get(loc[:1], node.start_mark.line + 1),
                f"invalid YAML: aliases expand to more than {_MAX_NODES:,} values",
                loc[:1],
            )
        expected_tag = (
            "map" if isinstance(node, yaml.MappingNode) else "seq" if isinstance(node, yaml.SequenceNode) else None
        )
        if expected_tag is not None and node.tag != f"tag:yaml.org,2002:{expected_tag}":
            raise YamlProblem(node.start_mark.line + 1, f"invalid YAML: unsupported tag {node.tag!r}", loc)
        if id(node) in self.active:
            raise YamlProblem(node.start_mark.line + 1, "invalid YAML: an alias refers to itself", loc)
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.active.add(id(node))
            try:
                return self._mapping(node, loc)
            finally:
                self.active.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.active.add(id(node))
            try:
                return [self.convert(item, (*loc, index)) for index, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        # Plain scalars skip construct_object's bookkeeping (a large file has thousands).
        constructor = self.loader.yaml_constructors.get(node.tag)
        if constructor is not None and isinstance(node, yaml.ScalarNode):
            return constructor(self.loader, node)
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        try:
            self.loader.flatten_mapping(node)  # `<<:` merge keys
        except yaml.MarkedYAMLError as exc:
            raise YamlProblem(node.start_mark.line + 1, f"invalid YAML: {exc.problem}", loc) from None
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(
                    key_node.start_mark.line + 1, "invalid YAML: mapping keys must be plain values", loc
                )
            key = self._scalar(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise YamlProblem(
                    key_node.start_mark.line + 1, "invalid YAML: mapping keys must be plain values", loc
                )
            if key in result:
                raise YamlProblem(
                    key_node.start_mark.line + 1, f"invalid YAML: duplicate key {key!r} in the same mapping", loc
                )
            self.lines.setdefault((*loc, key), key_node.start_mark.line + 1)
            result[key] = self.convert(value_node, (*loc, key))
        return result

"""YAML (and JSON) text -> Python objects that remember their lines, read safely.

:func:`yaml_documents` safe-loads every document of a text with PyYAML's *safe*
loader only (a subclass, :func:`loader_class`, that records line numbers): every
mapping is a :class:`LineDict` (its line and the line of each key), every sequence
a :class:`LineList`. The protections against hostile input:

* alias expansion is bounded by :data:`MAX_EXPANDED_NODES` (:func:`expanded_size`
  counts the nodes a document expands to; a "billion laughs" document is refused
  before it is constructed);
* flow collections (``[`` and ``{``) nested deeper than :data:`MAX_FLOW_DEPTH` are
  refused (PyYAML's scanner is quadratic in that depth), and so is nesting deeper
  than Python's recursion allows;
* a key repeated in one mapping is an error (as with kubectl), and so is an
  integer of more digits than :func:`int` converts.

Malformed input raises :class:`meshstat.errors.ConfigParseError` with ``file:line``.
Used by :mod:`meshstat.parsers.k8s` (manifests) and :mod:`meshstat.parsers.envoy`
(YAML bootstraps). The input size bound is the caller's (:mod:`meshstat.inputs`).

Pure Python (standard library and PyYAML, imported on first use).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshstat.errors import ConfigParseError

__all__ = [
    "MAX_EXPANDED_NODES",
    "MAX_FLOW_DEPTH",
    "LineDict",
    "LineList",
    "expanded_size",
    "loader_class",
    "yaml_documents",
]

#: Largest number of YAML nodes a document may expand to once aliases are followed.
MAX_EXPANDED_NODES = 1_000_000
#: Deepest nesting of YAML flow collections (``[`` and ``{``) read.
MAX_FLOW_DEPTH = 100


class LineDict(dict):
    """A mapping that remembers its line and the line of each key."""

    __slots__ = ("key_lines", "line")

    def line_of(self, key: str) -> int:
        """The line of ``key`` (the mapping's own line for a key it does not have)."""
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list that remembers its line."""

    __slots__ = ("line",)


def loader_class() -> type:
    """PyYAML's SafeLoader, recording lines (:class:`LineDict`, :class:`LineList`), with the limits above."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """PyYAML's SafeLoader that records line numbers of mappings and sequences."""

        def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # PyYAML's signature
            # PyYAML's scanner is quadratic in the depth of nested [ { (its list of possible
            # simple keys): 500 levels take seconds. Manifests nest them a few levels.
            if self.flow_level >= MAX_FLOW_DEPTH:
                raise yaml.scanner.ScannerError(
                    None, None, f"found [ or {{ nested deeper than {MAX_FLOW_DEPTH} levels", self.get_mark()
                )
            super().fetch_flow_collection_start(TokenClass)

    def construct_map(loader: Any, node: Any) -> Iterator[LineDict]:
        data = LineDict()
        data.line = node.start_mark.line + 1
        data.key_lines = {}
        yield data
        # keys written in this mapping (not merged in with '<<'): one may not appear twice
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)
        written: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
                ) from None
            if id(key_node) in explicit:
                if key in written:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"found duplicate key {str(key)[:60]!r} (first on line {written[key]}; "
                        "kubectl refuses it)", key_node.start_mark
                    )
                written[key] = key_node.start_mark.line + 1
            data[key] = loader.construct_object(value_node, deep=True)
            if isinstance(key, str):
                data.key_lines[key] = key_node.start_mark.line + 1

    def construct_seq(loader: Any, node: Any) -> Iterator[LineList]:
        data = LineList()
        data.line = node.start_mark.line + 1
        yield data
        data.extend(loader.construct_sequence(node, deep=True))

    def construct_int(loader: Any, node: Any) -> int:
        try:
            return yaml.SafeLoader.construct_yaml_int(loader, node)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise yaml.constructor.ConstructorError(
                None, None, f"found an integer of {len(str(node.value))} characters (too long)", node.start_mark
            ) from None

    _Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    _Loader.add_constructor("tag:yaml.org,2002:map", construct_map)
    _Loader.add_constructor("tag:yaml.org,2002:seq", construct_seq)
    return _Loader


_LOADER: type | None = None


def expanded_size(node: Any, limit: int) -> int:
    """Nodes a YAML node graph expands to when aliases are followed (stops past ``limit``)."""
    import yaml

    memo: dict[int, int] = {}
    stack_guard: set[int] = set()

    def size(n: Any) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        if key in stack_guard:  # recursive structure: infinite expansion
            return limit + 1
        stack_guard.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for c in n.value:
                total += size(c)
                if total > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        stack_guard.discard(key)
        memo[key] = total
        return total

    return size(node)


def yaml_documents(text: str, source: str) -> list[Any]:
    """Safe-load every document of ``text``, with bounded alias expansion."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = loader_class()
    docs: list[Any] = []
    loader = None
    try:
        loader = _LOADER(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                raise ConfigParseError(
                    f"document expands to more than {MAX_EXPANDED_NODES:,} nodes through aliases "
                    "(refused: alias bomb?)",
                    source=source,
                    line=node.start_mark.line + 1,
                )
            docs.append(loader.construct_document(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        what = " ".join(str(exc.problem or exc.context or "malformed YAML").split())
        snippet = text.splitlines()[line - 1].strip() if line and line <= len(text.splitlines()) else None
        raise ConfigParseError(
            f"invalid YAML: {what} (expected a YAML/JSON Kubernetes manifest)",
            source=source,
            line=line,
            column=col,
            snippet=snippet or None,
        ) from None
    except yaml.reader.ReaderError as exc:
        pos = exc.position if isinstance(exc.position, int) else 0
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        raise ConfigParseError(
            f"invalid YAML: character #x{char:04x} is not allowed in YAML",
            source=source,
            line=text.count("\n", 0, pos) + 1,
            column=pos - (text.rfind("\n", 0, pos) + 1) + 1,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigParseError(f"invalid YAML: {' '.join(str(exc).split())}", source=source) from None
    except RecursionError:
        mark = loader.get_mark() if loader is not None else None
        raise ConfigParseError(
            "invalid YAML: nested deeper than meshstat reads (refused)",
            source=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs

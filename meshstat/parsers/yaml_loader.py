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

Big texts as kubectl writes them take a fast path where one exists: JSON by orjson
(:func:`json_documents`), YAML of a megabyte or more by yaml-rs (:func:`fast_yaml_documents`),
each with the lines of keys found again in the text and every doubt sent to the exact loader.

Malformed input raises :class:`meshstat.errors.ConfigParseError` with ``file:line``.

Why this module is long: it holds the exact loader and the paths that must give the very same
trees (values, lines, limits, messages); kept in one module, the limits and the tree types they
share have one definition, and the tests compare the paths against each other here.
Used by :mod:`meshstat.parsers.k8s` (manifests) and :mod:`meshstat.parsers.envoy`
(YAML bootstraps). The input size bound is the caller's (:mod:`meshstat.inputs`).

Pure Python (standard library, PyYAML, orjson, yaml-rs and RE2, each imported on first use), but for
numpy, imported only to find the key lines of a JSON text of 1 MiB or more (:func:`_json_key_lines_numpy`).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator, MutableSequence, Sequence
from contextlib import contextmanager
from typing import Any

from meshstat.errors import ConfigParseError, MeshstatError
from meshstat.inputs import ascii_digits

__all__ = [
    "MAX_EXPANDED_NODES",
    "MAX_FLOW_DEPTH",
    "LineDict",
    "LineList",
    "expanded_size",
    "gc_paused",
    "loader_class",
    "yaml_documents",
]

#: Largest number of YAML nodes a document may expand to once aliases are followed.
MAX_EXPANDED_NODES = 1_000_000
#: Deepest nesting of YAML flow collections (``[`` and ``{``) read.
MAX_FLOW_DEPTH = 100


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large acyclic tree is built.

    Reading a cluster makes millions of dicts and lists; each collection pass walks every live
    container, so with the collector on, reading 10,000 Services costs two to three times as
    much. The trees built here hold no cycles (reference counting frees them); the collector's
    previous state is restored on exit.

    What was built survives the block (a cluster's model: hundreds of thousands of objects). Left in
    the youngest generation, the next allocation would start a collection that walks all of it,
    then the middle and the full ones would walk it again (0.4-0.6 s after reading 10,000 Services,
    measured). So, when the collector was on, the block's survivors go straight to the oldest
    generation on exit (:func:`gc.freeze` then :func:`gc.unfreeze`: two list moves, no walk). Nothing
    leaves the collector's care: a cycle among them is still found by the next full collection.
    When objects are frozen already (a large ruleset's, ``parsers.netfilter.iptables_save``),
    unfreezing would hand them back to the collector, so nothing is moved.
    """
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


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


def _python_documents(text: str, source: str) -> list[Any]:
    """Safe-load every document of ``text`` with the pure-Python loader, with bounded alias expansion."""
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
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
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


def _yaml_error(exc: Any, text: str, source: str) -> ConfigParseError:
    """The one-line error of a PyYAML (or libyaml) exception, with file, line and column."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        what = " ".join(str(exc.problem or exc.context or "malformed YAML").split())
        snippet = None
        if line:
            start = 0
            for _ in range(line - 1):
                start = text.find("\n", start) + 1
                if start == 0:
                    break
            else:
                end = text.find("\n", start)
                row = text[start:end if end >= 0 else len(text)]
                snippet = row.strip() or None
                if what == "found character that cannot start any token" and col and col <= len(row):
                    what = f"found character {row[col - 1]!r} that cannot start any token"  # libyaml omits it
        return ConfigParseError(f"invalid YAML: {what} (expected a YAML/JSON Kubernetes manifest)",
                                source=source, line=line, column=col, snippet=snippet)
    if isinstance(exc, yaml.reader.ReaderError):
        pos = exc.position if isinstance(exc.position, int) else 0
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return ConfigParseError(f"invalid YAML: character #x{char:04x} is not allowed in YAML", source=source,
                                line=text.count("\n", 0, pos) + 1,
                                column=pos - (text.rfind("\n", 0, pos) + 1) + 1)
    return ConfigParseError(f"invalid YAML: {' '.join(str(exc).split())}", source=source)


# --------------------------------------------------------------------------- the fast path

#: Deepest nesting of collections read (block and flow together); manifests nest about 20 levels.
MAX_DEPTH = 400
#: Above this many ``[``/``{`` characters a YAML text goes to the pure-Python loader, whose scanner
#: refuses deep flow nesting before it is built (libyaml's parser is quadratic in that depth: 20,000
#: nested ``[`` take seconds); below it the flow depth cannot exceed the count, which libyaml reads
#: in a fraction of a second.
C_LOADER_MAX_FLOW_OPENERS = 5000
#: Stack of the thread that composes with libyaml (its composer recurses in C, one frame per level).
_COMPOSE_STACK = 64 << 20

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"

_C_LOADER: type | None = None


def _c_loader_class() -> type | None:
    """libyaml's composer (``yaml.CSafeLoader``) with a memo of implicit scalar tags; ``None`` without libyaml."""
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        return None

    scalar, mapping = yaml.ScalarNode, yaml.MappingNode
    tags: dict[str, str] = {}  # one memo for every instance: an implicit tag depends on the value only
    base = yaml.CSafeLoader.resolve

    class _CLoader(yaml.CSafeLoader):
        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:  # PyYAML's signature
            # BaseResolver.resolve without its per-call work: a safe loader has no path resolvers, so a
            # collection's tag is the default one and a scalar's depends on its value alone
            if kind is scalar:
                if not implicit[0]:
                    return _STR
                tag = tags.get(value)
                if tag is None:
                    tag = base(self, kind, value, implicit)
                    if len(tags) < 100_000:
                        tags[value] = tag
                return tag
            return _MAP if kind is mapping else _SEQ

    return _CLoader


def _compose_c(text: str) -> tuple[list[Any], Any]:
    """Every document's node graph, composed by libyaml in a thread with a large stack."""
    import threading

    out: list[Any] = []
    err: list[BaseException] = []
    loader = _C_LOADER(text)  # type: ignore[misc]

    def run() -> None:
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    out.append(node)
        except BaseException as exc:  # handed to the caller's thread
            err.append(exc)

    old = threading.stack_size()
    threading.stack_size(_COMPOSE_STACK)
    try:
        th = threading.Thread(target=run, name="meshstat-yaml")
        th.start()
    finally:
        threading.stack_size(old)
    th.join()
    if err:
        raise err[0]
    return out, loader


class _Builder:
    """Nodes -> LineDict / LineList / scalars, with the limits (depth, flow depth, duplicate keys)."""

    def __init__(self, loader: Any, shared: bool, merges: bool = True) -> None:
        import yaml

        self.loader = loader
        #: whether the text may hold a merge key (``<<``, or the tag written out)
        self.merges = merges
        self.memo: dict[int, Any] | None = {} if shared else None
        self.yaml = yaml
        self.bools = yaml.SafeLoader.bool_values

    def fail(self, problem: str, node: Any) -> Exception:
        return self.yaml.constructor.ConstructorError(None, None, problem, node.start_mark)

    def build(self, node: Any, depth: int, flow: int) -> Any:
        memo = self.memo
        if memo is not None:
            got = memo.get(id(node), memo)
            if got is not memo:
                return got
        y = self.yaml
        cls = node.__class__
        tag = node.tag
        if cls is y.ScalarNode:
            if tag == _STR:
                v: Any = node.value
            elif tag == _INT:
                v = self.integer(node)
            elif tag == _NULL:
                v = None
            elif tag == _BOOL:
                v = self.bools[node.value.lower()]
            else:
                v = self.loader.construct_object(node, deep=True)
        elif depth >= MAX_DEPTH:
            raise _TooDeep(node)
        elif node.flow_style and flow >= MAX_FLOW_DEPTH:
            raise self.fail(f"found [ or {{ nested deeper than {MAX_FLOW_DEPTH} levels", node)
        elif tag == _MAP:
            v = self.mapping(node, depth + 1, flow + bool(node.flow_style))
        elif tag == _SEQ:
            v = LineList()
            v.line = node.start_mark.line + 1
            if memo is not None:
                memo[id(node)] = v
            f = flow + bool(node.flow_style)
            v.extend([self.build(c, depth + 1, f) for c in node.value])
        else:  # !!set, !!omap, !!pairs and the like: PyYAML's safe constructors
            v = self.loader.construct_object(node, deep=True)
        if memo is not None:
            memo[id(node)] = v
        return v

    def integer(self, node: Any) -> int:
        value = node.value
        if ascii_digits(value) and len(value) < 19:
            return int(value)
        try:
            return self.loader.construct_yaml_int(node)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise self.fail(f"found an integer of {len(str(value))} characters (too long)", node) from None

    def mapping(self, node: Any, depth: int, flow: int) -> LineDict:
        data = LineDict()
        data.line = node.start_mark.line + 1
        lines: dict[str, int] = {}
        data.key_lines = lines
        if self.memo is not None:
            self.memo[id(node)] = data
        pairs = node.value
        explicit: set[int] | None = None
        if self.merges and any(k.tag == _MERGE for k, _ in pairs):
            explicit = {id(k) for k, _ in pairs if k.tag != _MERGE}
            self.loader.flatten_mapping(node)
            pairs = node.value
        scalar = self.yaml.ScalarNode
        build = self.build
        for key_node, value_node in pairs:
            if key_node.__class__ is scalar and key_node.tag == _STR:
                key: Any = key_node.value
                lines[key] = key_node.start_mark.line + 1
            else:
                key = build(key_node, depth, flow)
                try:
                    hash(key)
                except TypeError:
                    raise self.yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, "found an unhashable key",
                        key_node.start_mark) from None
                if isinstance(key, str):
                    lines[key] = key_node.start_mark.line + 1
            data[key] = build(value_node, depth, flow)
        if len(data) != len(pairs) or explicit is not None:
            self.duplicates(pairs, explicit, depth, flow)
        return data

    def duplicates(self, pairs: list[Any], explicit: set[int] | None, depth: int, flow: int) -> None:
        """Refuse a key written twice in one mapping (keys merged in with ``<<`` may repeat)."""
        written: dict[Any, int] = {}
        for key_node, _ in pairs:
            if explicit is not None and id(key_node) not in explicit:
                continue
            key = key_node.value if key_node.tag == _STR else self.build(key_node, depth, flow)
            if key in written:
                raise self.fail(f"found duplicate key {str(key)[:60]!r} (first on line {written[key]}; "
                                "kubectl refuses it)", key_node)
            written[key] = key_node.start_mark.line + 1


class _TooDeep(Exception):
    def __init__(self, node: Any) -> None:
        self.node = node


def _c_documents(text: str, source: str) -> list[Any]:
    """libyaml composes, :class:`_Builder` constructs; the same limits and messages as the Python path."""
    import gc

    import yaml

    gc_was = gc.isenabled()
    gc.disable()  # millions of new nodes: the collector's passes over them cost more than the parse
    loader = None
    try:
        nodes, loader = _compose_c(text)
        shared = "&" in text  # anchors: aliases may share nodes
        merges = "<<" in text or "merge" in text
        docs = []
        for node in nodes:
            if shared and expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                raise ConfigParseError(
                    f"document expands to more than {MAX_EXPANDED_NODES:,} nodes through aliases "
                    "(refused: alias bomb?)", source=source, line=node.start_mark.line + 1)
            docs.append(_Builder(loader, shared, merges).build(node, 0, 0))
        return docs
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    except (_TooDeep, RecursionError) as exc:
        line = exc.node.start_mark.line + 1 if isinstance(exc, _TooDeep) else None
        raise ConfigParseError("invalid YAML: nested deeper than meshstat reads (refused)", source=source,
                               line=line) from None
    finally:
        if loader is not None:
            loader.dispose()
        if gc_was:
            gc.enable()


def yaml_documents(text: str, source: str) -> list[Any]:
    """Every document of a YAML or JSON text, as :class:`LineDict`/:class:`LineList` trees.

    JSON (a text starting with ``{`` or ``[``) is read by :func:`json_documents`
    when it can be (orjson, lines found again in the text); YAML by libyaml (``yaml.CSafeLoader``'s
    composer, :func:`_c_documents`) unless the text has more than :data:`C_LOADER_MAX_FLOW_OPENERS`
    ``[``/``{`` or PyYAML lacks libyaml; else by the pure-Python loader. Every path has the same
    limits and the same messages.
    """
    global _C_LOADER
    head = text.lstrip()[:1]
    if head in ("{", "["):
        got = json_documents(text)
        if got is not None:
            return got
    elif len(text) >= FAST_YAML_MIN_CHARS:
        got = fast_yaml_documents(text)
        if got is not None:
            return got
    if _C_LOADER is None:
        _C_LOADER = _c_loader_class() or False  # type: ignore[assignment]
    # an empty [] or {} nests nothing: the flow depth is at most the other openers plus one
    openers = text.count("[") + text.count("{") - text.count("[]") - text.count("{}")
    if _C_LOADER and openers < C_LOADER_MAX_FLOW_OPENERS:
        return _c_documents(text, source)
    return _python_documents(text, source)


# --------------------------------------------------------------------------- big YAML exports

#: YAML texts of at least this many characters try :func:`fast_yaml_documents` first.
FAST_YAML_MIN_CHARS = 1 << 20

#: What the fast YAML path does not read the way PyYAML's safe loader does, or cannot find the lines
#: of: comments, folded block scalars (``>``; literal ones, ``|``, as kubectl writes multi-line strings,
#: are read), flow collections with content, anchors, aliases, tags, complex keys, merge keys, document
#: markers and directives, quoted keys, tabs, a blank line after a key that opens a block, carriage
#: returns, a text that does not end with a line break, the line breaks
#: YAML 1.1 knows and 1.2 does not, characters PyYAML refuses (control characters, the byte order mark),
#: ``\\/`` escapes, lines indented by 800 or more spaces (400 levels: :data:`MAX_DEPTH`), ``- -`` (a
#: list in a list), ``- {}``, and every plain scalar that YAML 1.1 (PyYAML) and YAML 1.2 (yaml-rs)
#: resolve differently: ``yes``/``no``/``on``/``off``, ``=``, numbers with ``_``, a leading zero,
#: ``0b``/``0o``/``0x``, an exponent or ``:`` (base 60), ``.inf``/``.nan``, integers of 19 or more
#: digits, dates; and keys that are not plain strings. A text with any of them (kubectl writes none)
#: is read by the exact loader. A block scalar's lines may trip these checks too: that costs time only.
_FAST_YAML_REFUSES = (
    r"(?m)(?:^|[ ])#|[:-][ ]+>|(?:: |- )[ ]*[\[{][^\]}]|(?:: |- )[ ]*[&*!]|\t|:[ ]*\n[ ]*\n"
    r"|^[ ]*(?:-[ ]+)*(?:[&*!?%@`,]|['\"][^\n]*['\"][ ]*:(?:[ ]|$))|<<|^(?:---|\.\.\.|%)"
    r"|[^\t\n\x20-\x7e\x{a0}-\x{d7ff}\x{e000}-\x{fffd}\x{10000}-\x{10ffff}]|[\x{2028}\x{2029}\x{feff}]"
    r"|\\/|^[ ]{800}|-[ ]+-(?:[ ]|$)|-[ ]+(?:\{\}|\[\])"
    r"|(?:: |- )[ ]*(?:[Yy]es|YES|[Nn]o|NO|[Oo]n|ON|[Oo]ff|OFF|=)[ ]*$"
    r"|(?:: |- )[ ]*[-+]?(?:0[0-9_]|0[boxBOX]|[0-9][0-9_]*:[0-5]?[0-9]|[0-9][0-9.]*_|[0-9][0-9.]*[eE][-+]?[0-9]"
    r"|\.[0-9]+[eE]|\.(?:inf|Inf|INF|nan|NaN|NAN)|[0-9]{19}|[0-9]{4}-[0-9][0-9]?-[0-9])"
    r"|^[ ]*(?:-[ ]+)*(?:(?:-[^ :\n]|[+0-9~=]|\.[0-9iInN])[^\n]*|[Yy]es|YES|[Nn]o|NO|[Oo]n|ON|[Oo]ff|OFF|[Tt]rue|TRUE"
    r"|[Ff]alse|FALSE|[Nn]ull|NULL)[ ]*:(?:[ ]|$)"
)
#: One match per line: the key the line starts (after indentation and ``- `` markers), or ``""``.
_YAML_KEY_LINE = (
    r"(?m)^[ ]*(?:-[ ]+)*(?:([^ \n#'\"?:,\[\]{}&*!|>%@`-][^\n]*?)[ ]*:(?:[ ][^\n]*)?$|[^\n]*$)"
)
_FAST_RE: list[Any] = []


def fast_yaml_documents(text: str) -> list[Any] | None:
    """A large YAML text (a cluster export) read by yaml-rs, with the lines of every mapping and key.

    yaml-rs (Rust, a dependency) parses YAML 1.2 an order of magnitude faster than libyaml's composer
    with PyYAML's node objects; it refuses duplicate keys and bounds alias expansion itself. Lines
    come from the text: in block YAML as kubectl writes it every key starts a line, so one regular
    expression over the lines gives the line and the text of the i-th key; the walk that makes the
    :class:`LineDict` tree checks every key of the parsed tree against that text, in order, so a text
    the table misreads is given up, never given wrong lines (:func:`_lined_tree`).

    ``None`` (read with the exact loader, which also gives its messages) when the text holds anything
    in :data:`_FAST_YAML_REFUSES`, is not one mapping, does not parse, or the keys disagree. Where it
    answers, the trees, values and lines are those of the exact loader (tests/parsers check this).
    """
    import re

    if not _FAST_RE:
        try:
            import re2  # a dependency: one linear-time pass over the text for everything refused
        except ImportError:  # without it the exact loader reads everything
            return None
        _FAST_RE.extend((re2.compile(_FAST_YAML_REFUSES), re.compile(_YAML_KEY_LINE)))
    refuses, key_line = _FAST_RE
    if not text[:1].isascii() or not text[:1].isalpha() or not text.endswith("\n"):
        return None
    try:
        if refuses.search(text):
            return None
    except UnicodeError:  # a lone surrogate: not UTF-8, the exact loader says where
        return None
    try:
        import yaml_rs  # a dependency; without it, the exact loader reads everything
    except ImportError:
        return None
    import threading

    parsed: list[Any] = []

    def parse() -> None:
        try:
            parsed.append(yaml_rs.loads(text, parse_datetime=False))
        except BaseException:  # noqa: BLE001 - any refusal (a Rust panic too): the exact loader says why
            pass

    # yaml-rs parses without the GIL: the key table is found on the other core meanwhile
    th = threading.Thread(target=parse, name="meshstat-yaml-rs")
    th.start()
    try:
        found = key_line.findall(text)
        tab = [i for i, k in enumerate(found, 1) if k]
        keys = [k for k in found if k]
        del found
    finally:
        th.join()
    if not parsed or type(parsed[0]) is not dict:
        return None
    return _lined_document(parsed[0], tab, keys, block_lists=True)


# --------------------------------------------------------------------------- JSON

#: Subtrees kubectl prints that no manifest reader looks at: converted without line numbers.
_UNREAD_KEYS = frozenset({"status", "managedFields"})


def json_documents(text: str) -> list[Any] | None:
    """A JSON text read by orjson, with the lines of every mapping and key found again in the text.

    orjson (a dependency) parses in C and refuses nesting deeper than 1024 levels. Lines come from
    the text: outside strings, every ``":`` ends a key, and inside a string a quote is escaped, so the
    i-th unescaped ``":`` is the i-th key in document order, which is orjson's order. Passes over the
    text in C (:func:`_json_key_lines`; numpy's for big texts, in a forked process while this one
    parses, :func:`_big_json_documents`) give every key's line; the walk that
    makes :class:`LineDict` trees then costs one step per mapping and key, and the line of each key of
    a mapping (:attr:`LineDict.key_lines`) is worked out only when something asks for it (an error
    message, a provenance line). A text with ``" :`` (a space before a colon) takes the slower walk
    that finds each key in turn (:class:`_JsonLines`). Subtrees under ``status`` and
    ``managedFields`` are kept as orjson made them.

    ``None`` (read the text as YAML instead, which is exact and gives YAML's messages) when the text
    is not JSON or the number of keys written differs from the number read: a key written twice
    (orjson keeps the last; kubectl refuses it), or an unusual layout.
    """
    try:
        import orjson  # a dependency: JSON never falls back to a slow loader silently
    except ImportError:
        raise MeshstatError("reading JSON needs the orjson package, a dependency of meshstat "
                            "(pip install orjson)") from None
    if len(text) >= NUMPY_KEY_LINES_MIN_CHARS:
        return _big_json_documents(text, orjson)
    try:
        root = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    tab = _json_key_lines(text)
    if tab is not None:
        return _lined_document(root, tab, None, block_lists=False)
    return _json_walked(text, root)


def _big_json_documents(text: str, orjson: Any) -> list[Any] | None:
    """:func:`json_documents` of a text of :data:`NUMPY_KEY_LINES_MIN_CHARS` or more: the key lines are found
    (:func:`_json_key_lines_numpy`) by a forked process (:func:`meshstat.workers.start`) while this one parses
    the text with orjson and makes the tree.

    The walk only counts keys; the table is added after it, before any line is asked for. On the 2-core
    benchmark machine the table of a 75 MB export takes 0.2-0.3 s, all of it beside orjson's parse
    (``python3 benchmarks/scale.py stages 10000 100`` times each stage alone). Where no other process may run,
    the table is found here after the walk.
    """
    from meshstat.workers import start

    pending = start(lambda: _json_key_lines_numpy(text))
    try:
        try:
            root = orjson.loads(text)
        except orjson.JSONDecodeError:
            pending.cancel()
            return None
        ltab = array("q", [1])  # entry 0: the document's line; the keys' lines follow when found
        got = _lined_tree(root, ltab, None, block_lists=False)
    except BaseException:
        pending.cancel()
        raise
    tab = pending.result()
    if tab is None:  # a '" :': each key is found in turn
        return _json_walked(text, root)
    if got is None or got[1] != len(tab):
        return None
    ltab += tab
    return [got[0]]


#: The opening of a JSON List: ``items`` after at most four keys with text values (``apiVersion``, ``kind``),
#: as kubectl and other writers put them.
_LIST_HEAD = re.compile(r'\s*\{(?:\s*"[A-Za-z]{1,20}":\s*"[^"\\]{0,100}"\s*,){0,4}\s*"items":\s*\[')


class ListCut:
    """A JSON List cut in two between two items, in the text: each part read on its own, in pieces.

    The head is the text up to the end of an item: the List's opening keys and the items up to the cut. The
    tail is the rest: the items after the cut and the List's last keys. Each part is read in pieces of about
    :data:`LIST_PIECE_CHARS` characters, cut between items too (:meth:`head_items`, :meth:`tail_items`): a
    piece's key lines are found in its own text, and orjson parses it; its trees are made, converted by the
    caller and let go before the next piece is parsed, so that every piece is made in the memory the one
    before it left. A piece whose keys are not the ones its text writes (a key written twice, which orjson
    keeps once; ``" :``, which the key lines do not read) ends the part (``None``): the caller then reads the
    whole text in one. ``items_entry`` is the table entry of the ``items`` key, ``items_line`` its line;
    ``sep`` is the text between two items (``}``, ``,`` and ``{`` on lines of their own at the indentation of
    the first item), ``indent`` that indentation's length.
    """

    __slots__ = ("head_end", "indent", "items_entry", "items_line", "sep", "tail_start")

    def __init__(self, head_end: int, tail_start: int, items_entry: int, items_line: int, sep: str) -> None:
        self.head_end, self.tail_start, self.items_entry = head_end, tail_start, items_entry
        self.items_line, self.sep, self.indent = items_line, sep, (len(sep) - 5) // 2

    def _pieces(self, text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of the pieces of ``text[start:end]`` (``start`` at an item, ``end`` after one):
        each ends at the first item boundary after :data:`LIST_PIECE_CHARS` characters, the last at
        ``end``."""
        while True:
            i = text.find(self.sep, start + LIST_PIECE_CHARS, end)
            if i < 0:
                yield start, end
                return
            yield start, i + self.indent + 2
            start = i + len(self.sep) - 1

    def head_items(self, text: str) -> Iterator[list[Any] | dict[str, Any] | None]:
        """The head's items, a piece at a time (a list of :class:`LineDict` trees each, ready to convert),
        then the List's keys before ``items`` (a dict); ``None``, and nothing more, where the head is not the
        opening of a List and whole items with the keys its text writes.
        """
        return self._items(text, 0, self.head_end, array("q", [1]), self.items_entry)

    def tail_items(self, text: str) -> Iterator[list[Any] | dict[str, Any] | None]:
        """The tail's items, a piece at a time (as :meth:`head_items` gives them), then the List's keys after
        ``items``; ``None``, and nothing more, where the tail is not whole items and the end of a List with
        the keys its text writes.

        The tail's trees take their lines from a table of their own: the ``items`` key's line (a list's line
        is its key's), then the lines of the tail's keys.
        """
        return self._items(text, self.tail_start, len(text), array("q", [self.items_line]), 0)

    def _items(self, text: str, start: int, end: int, ltab: array[int], parent: int
               ) -> Iterator[list[Any] | dict[str, Any] | None]:
        """The items of the part ``text[start:end]`` a piece at a time, their lines from ``ltab`` (each
        piece's key lines are added to it; ``parent`` is the entry of the ``items`` key's line), then the
        List's own keys in the part (:meth:`_list_keys`); ``None``, and nothing more, where a piece is not
        what it should be."""
        import orjson

        own: dict[str, Any] = {}
        line = 1 + text.count("\n", 0, start)
        at = start
        for s, e in self._pieces(text, start, end):
            line += text.count("\n", at, s)
            at = s
            piece = text[s:e]
            lines = _json_key_lines_numpy(piece, line)
            opening, closing = s == 0, e == len(text)
            try:
                root = orjson.loads(piece + "]}" if opening else '{"items":[' + piece if closing
                                    else "[" + piece + "]")
            except orjson.JSONDecodeError:
                yield None
                return
            entry, keys, items = len(ltab) - 1, 0, root  # the entry of the last key before the piece's items
            if opening or closing:
                got = self._list_keys(root, opening)
                if got is None:
                    yield None
                    return
                items, own, keys = got
                if opening:
                    entry = self.items_entry
            if lines is None:
                yield None
                return
            ltab += lines
            tree = _lined_tree(items, ltab, None, False, start=entry, parent=parent, depth=1, release=True)
            if tree is None or tree[1] + keys != len(ltab) - 1:
                yield None
                return
            yield tree[0]
        yield own

    def _list_keys(self, root: Any, opening: bool) -> tuple[list[Any], dict[str, Any], int] | None:
        """``(items, the List's own keys, how many keys they write)`` of the piece that opens the List (text
        keys, then ``items``: written before the items, so none counted after them) or ends it (``items`` read
        as the first key, then whatever follows and every key it holds); None where ``root`` is not that."""
        if type(root) is not dict or type(root.get("items")) is not list:
            return None
        if opening:
            if next(reversed(root)) != "items":
                return None
            items = root.pop("items")
            if len(root) != self.items_entry - 1 or any(type(v) in (dict, list) for v in root.values()):
                return None
            return items, root, 0
        items = root.pop("items")
        keys = 0
        for v in root.values():
            n = 0
            if type(v) is dict or type(v) is list:
                counted = _lined_tree(v, array("q"), None, False, depth=1)  # its keys and depth
                if counted is None:
                    return None
                n = counted[1]
            keys += 1 + n
        return items, root, keys


#: The characters of a JSON List that :class:`ListCut` reads as one piece (about 80 objects of a cluster
#: export): each piece is made in the memory the one before it left, where the trees of a whole part took new
#: memory. The read of the benchmark's 75 MB List in two processes took 0.78-0.89 s in pieces of 256 KiB,
#: 0.80-0.95 s in pieces of 1 MiB, 0.99-1.06 s in pieces of 4 MiB and 1.09-1.25 s with each part whole (this
#: process: 24,000 page faults, where whole parts took 100,000); 128 and 512 KiB were no faster
#: (``python3 benchmarks/scale.py pieces 10000 100``, five runs each, alternating).
LIST_PIECE_CHARS = 1 << 18


def json_list_cut(text: str, tail_share: float) -> ListCut | None:
    """Where to cut a JSON List written with one item opening per line (``kubectl get -o json``): between two
    items, about ``tail_share`` of the text from its end; ``None`` for a text under
    :data:`NUMPY_KEY_LINES_MIN_CHARS` (read in one process sooner than forked), one that does not open as a
    List (:data:`_LIST_HEAD`) or has no item boundary there (a List on one line, say).

    An item boundary is ``}``, ``,`` and ``{`` on lines of their own at the indentation of the first item.
    That is only where to look: :meth:`ListCut.head_items` and :meth:`ListCut.tail_items` parse the pieces,
    and only pieces that are the opening, whole items and the end of a List with the keys their text writes
    are used.
    """
    m = _LIST_HEAD.match(text) if len(text) >= NUMPY_KEY_LINES_MIN_CHARS else None
    if m is None:
        return None
    at = m.end()
    first = text.find("{", at)
    line = text.rfind("\n", at, first)
    if first < 0 or line < 0 or text[at:line].strip() or text[line + 1:first].strip(" "):
        return None
    indent = text[line + 1:first]
    sep = f"\n{indent}}},\n{indent}{{"
    target = at + int((len(text) - at) * (1 - tail_share))
    i = text.find(sep, target)
    if i < 0:
        i = text.rfind(sep, at, target)
        if i < 0:
            return None
    items_line = 1 + text.count("\n", 0, m.start() + m.group(0).rindex('"items"'))
    return ListCut(i + len(indent) + 2, i + len(sep) - 1, m.group(0).count('":'), items_line, sep)


def _json_walked(text: str, root: Any) -> list[Any] | None:
    """The tree of a JSON text that writes a space before a colon: each key found in turn (:class:`_JsonLines`)."""
    written = text.count('":') - text.count('\\":') + text.count('" :')
    walker = _JsonLines(text)
    doc = walker.convert(root, 1, 0)
    if walker.keys != written or walker.too_deep:
        return None
    return [doc]


def _line_dict(items: dict[Any, Any], line: int, key_lines: dict[str, int]) -> LineDict:
    out = LineDict(items)
    out.line, out.key_lines = line, key_lines
    return out


def _line_list(items: list[Any], line: int) -> LineList:
    out = LineList(items)
    out.line = line
    return out


#: The slots of :class:`LineDict` that a fast-path tree computes on demand instead (read through these).
_KEY_LINES = LineDict.__dict__["key_lines"]


class _LinedDict(LineDict):
    """A :class:`LineDict` of a fast path: its line and its keys' lines come from the document's line table.

    ``_tab`` is that table: ``_tab[0]`` is line 1 (the document's own line) and ``_tab[i]`` the line of the
    i-th key written, in document order. ``_k`` is the entry of this mapping's first key, or, for an empty
    mapping, the entry its parent's line came from. One slot set per mapping while the tree is made: the
    lines of its keys are worked out only when something asks (an error message, a provenance line).
    """

    __slots__ = ("_k", "_tab")

    @property  # type: ignore[override]
    def line(self) -> int:
        return self._tab[self._k]

    @property  # type: ignore[override]
    def key_lines(self) -> dict[str, int]:
        try:
            return _KEY_LINES.__get__(self)  # type: ignore[no-any-return]
        except AttributeError:
            pass
        kl = {}
        tab = self._tab
        i = self._k
        for k, x in self.items():
            kl[k] = tab[i]
            i += 1 + (_keys_in(x) if isinstance(x, dict | list) else 0)
        _KEY_LINES.__set__(self, kl)
        return kl

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy and pickle: a plain LineDict
        return _line_dict, (dict(self), self.line, dict(self.key_lines))

    def line_of(self, key: str) -> int:
        if key not in self:
            return self.line
        i = self._k  # the keys before ``key`` and what they hold, counted
        for k, x in self.items():
            if k == key:
                return self._tab[i]  # type: ignore[no-any-return]
            i += 1 + (_keys_in(x) if isinstance(x, dict | list) else 0)
        raise AssertionError("unreachable: the key is in the mapping")


class _LinedList(LineList):
    """A :class:`LineList` of a fast path: its line is its parent's (``_tab[_k]``), as a JSON array's is."""

    __slots__ = ("_k", "_tab")

    @property  # type: ignore[override]
    def line(self) -> int:
        return self._tab[self._k]  # type: ignore[no-any-return]

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy and pickle: a plain LineList
        return _line_list, (list(self), self.line)


class _LinedBlockList(_LinedList):
    """A block list of YAML as kubectl writes it: its first ``-`` is on the line after its key."""

    __slots__ = ()

    @property  # type: ignore[override]
    def line(self) -> int:
        return self._tab[self._k] + (1 if self else 0)  # type: ignore[no-any-return]


def _keys_in(v: Any) -> int:
    """Keys in a subtree (mappings' keys at every level), converted or not."""
    if isinstance(v, dict):
        return len(v) + sum(_keys_in(x) for x in v.values() if isinstance(x, dict | list))
    if isinstance(v, list):
        return sum(_keys_in(x) for x in v if isinstance(x, dict | list))
    return 0


class _Mismatch(Exception):
    """The text's keys and the parsed tree's keys disagree: the fast path gives up."""


def _lined_document(root: Any, tab: Sequence[int], keys: list[str] | None, block_lists: bool) -> list[Any] | None:
    """``[tree]`` of :func:`_lined_tree` with the line table ``tab`` of every key, or ``None`` when the tree's keys
    are not the table's."""
    ltab = [1]
    ltab += tab
    got = _lined_tree(root, ltab, keys, block_lists)
    return None if got is None or got[1] != len(tab) else [got[0]]


def _lined_tree(root: Any, ltab: MutableSequence[int], keys: list[str] | None, block_lists: bool, *,
                start: int = 0, parent: int = 0, depth: int = 0, release: bool = False
                ) -> tuple[Any, int] | None:
    """A parsed tree (plain dicts and lists) -> (:class:`LineDict`/:class:`LineList` tree, the keys it holds).

    The tree's lines come from ``ltab``: ``ltab[0]`` is the document's line (1) and ``ltab[i]`` the line of
    the i-th key written in the text, in document order (the order of the parsed mappings, walked depth
    first). The walk only counts keys: ``ltab`` may be filled in after it, before a line is asked for; the
    caller checks that the count is the table's. With ``keys`` (the text of each key, as written), every key
    of the tree is checked against it, so a text whose keys the table misreads is given up (``None``), never
    given wrong lines. A list's line is its parent key's (JSON), or the next line when the list is not empty
    (block YAML, where the first ``-`` follows its key). Subtrees under :data:`_UNREAD_KEYS` are kept as
    parsed (their keys counted, not converted). ``None`` also when the tree nests deeper than
    :data:`MAX_DEPTH` or has more keys than ``keys``.

    ``release`` (a list ``root``): each item is dropped from ``root`` once converted, so that the parsed tree
    is freed while the converted one is made, in the memory it leaves. ``start``, ``parent`` and ``depth``
    convert a part of a document (:class:`ListCut`): the entry of the last key before ``root``, the
    entry ``root``'s line comes from, and its nesting depth.
    """
    pos = start  # entries used so far: the entry of the last key converted
    lined_list = _LinedBlockList if block_lists else _LinedList

    def conv_dict(v: dict[Any, Any], parent: int, depth: int) -> _LinedDict:
        nonlocal pos
        if depth >= MAX_DEPTH:
            raise _Mismatch
        out = _LinedDict(v)
        out._tab = ltab
        p = pos
        out._k = p + 1 if v else parent
        for k, x in v.items():
            p += 1
            if keys is not None and keys[p - 1] != k:
                raise _Mismatch
            t = type(x)
            if t is dict:
                if k in _UNREAD_KEYS:
                    p += _keys_in(x)
                    continue
                pos = p
                out[k] = conv_dict(x, p, depth + 1)
                p = pos
            elif t is list:
                pos = p
                out[k] = conv_list(x, p, depth + 1)
                p = pos
        pos = p
        return out

    def conv_list(v: list[Any], parent: int, depth: int, release: bool = False) -> _LinedList:
        if depth >= MAX_DEPTH:
            raise _Mismatch
        out = lined_list(v)
        out._tab = ltab
        out._k = parent
        # an item's line, when it has no key of its own: the list's (JSON) or the line of its ``-`` (YAML,
        # where an empty mapping or a list as an item is refused before this walk)
        for j, x in enumerate(v):
            t = type(x)
            if t is dict:
                out[j] = conv_dict(x, parent, depth + 1)
            elif t is list:
                out[j] = conv_list(x, parent, depth + 1)
            if release:  # the parsed item goes now: the next items are made in its memory
                v[j] = x = None
        return out

    try:
        t = type(root)
        if t is dict:
            doc: Any = conv_dict(root, parent, depth)
        elif t is list:
            doc = conv_list(root, parent, depth, release)
        else:
            doc = root
    except (_Mismatch, IndexError):
        return None
    return doc, pos


def _json_key_lines(text: str) -> Sequence[int] | None:
    """The line of every key of a JSON text that writes no space before a colon, in document order.

    ``None`` when the text has a ``" :`` (a key may have a space before its colon): the caller then
    finds each key in turn.

    Outside strings, a ``"`` followed by ``:`` closes a key (a string followed by a colon is a key, and
    nothing else is). Inside a string every ``"`` is escaped: ``\\"``, after an odd run of backslashes
    (``\\\\`` is an escaped backslash). So each ``":`` of the text closes a key unless the text before
    it ends with an odd run of backslashes: a JSON string in an annotation, as kubectl's
    ``last-applied-configuration`` is. One split of the text and a running count of its newlines (in C)
    give the line of every ``":``; the escaped ones, found among the pieces that end with a backslash,
    are dropped.
    """
    if len(text) >= NUMPY_KEY_LINES_MIN_CHARS:
        return _json_key_lines_numpy(text)
    if '" :' in text:
        return None
    from itertools import accumulate, compress, count, repeat

    pieces = text.split('":')
    # line of the i-th ``":`` (1-based): 1 + newlines before it
    lines = list(accumulate(map(str.count, pieces, repeat("\n")), initial=1))[1:-1]
    if '\\":' not in text:
        return lines
    keep = [True] * len(lines)
    for i in compress(count(), map(str.endswith, pieces[:-1], repeat("\\"))):
        p = pieces[i]
        if (len(p) - len(p.rstrip("\\"))) % 2:  # an escaped quote: inside a string
            keep[i] = False
    return list(compress(lines, keep))


#: JSON texts of at least this many characters find their key lines with numpy: vectorised passes over the
#: bytes take 0.17 s for a 75 MB cluster export where the split of the text takes 0.40 s; below it, the
#: split is cheaper than importing numpy (0.05 s).
NUMPY_KEY_LINES_MIN_CHARS = 1 << 20


def _json_key_lines_numpy(text: str, first_line: int = 1) -> array[int] | None:
    """:func:`_json_key_lines` over the UTF-8 bytes with numpy: the same lines (tests/parsers check it), as an
    ``array('q')`` (8 bytes a key, where a list of ints takes about 36; indexing it gives ints).

    ``"``, ``:``, ``\\`` and the line break are single bytes in UTF-8 and never part of another character, so
    the byte positions of ``":`` and of line breaks give the same lines as the characters do. The bytes are
    passed over in pieces of :data:`_KEY_LINES_PIECE` (two bytes of the piece before looked back at), so the
    passes reuse a little memory where whole-text arrays would each be new memory to map: 0.12-0.18 s for a
    75 MB export where whole-text passes took 0.20-0.39 s. A ``":`` after a run of backslashes is dropped when
    the run is odd; each run's length comes from one pass over the backslashes, so a hostile text of long runs
    costs no more than a plain one.
    """
    import numpy as np  # a dependency; imported here only for big texts

    b = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
    found, lines, after_bs = [], [], []
    line0 = first_line
    piece = _KEY_LINES_PIECE
    for s in range(0, b.size, piece):
        lo = max(s - 2, 0)
        seg = b[lo:s + piece]
        colon = np.flatnonzero(seg[1:] == 58) + 1  # a ':' with a byte before it
        colon = colon[colon + lo >= s]  # those of the piece (the bytes before it were the piece before's)
        before = seg[colon - 1]
        spaced = colon[(before == 32) & (colon >= 2)]
        if spaced.size and (seg[spaced - 2] == 34).any():  # a '" :'
            return None
        colon = colon[before == 34]
        newlines = np.flatnonzero(seg[s - lo:] == 10) + (s - lo)
        found.append(colon + lo)
        lines.append(np.searchsorted(newlines, colon) + line0)
        line0 += newlines.size
        bs = colon[colon >= 2]
        after_bs.append(bs[seg[bs - 2] == 92] + lo)
    colon, got = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (found, lines))
    after = np.concatenate(after_bs) if after_bs else colon[:0]
    if after.size:  # a '\\":' (in a JSON string written inside a string): kept only after an even run
        bs = np.flatnonzero(b == 92)
        run_start = np.ones(bs.size, dtype=bool)
        run_start[1:] = bs[1:] != bs[:-1] + 1
        first = bs[np.maximum.accumulate(np.where(run_start, np.arange(bs.size), 0))]
        last = after - 2  # the backslash before the quote: the end of its run
        odd = (last - first[np.searchsorted(bs, last)] + 1) % 2 == 1
        got = got[~np.isin(colon, after[odd])]
    out = array("q")
    out.frombytes(got.astype(np.int64, copy=False).tobytes())
    return out


#: Bytes per piece of :func:`_json_key_lines_numpy` (tests make it small to put keys across the pieces'
#: edges).
_KEY_LINES_PIECE = 1 << 20


def _json_key(k: str) -> str:
    """A key as JSON writers escape it (``\\"``, ``\\\\``, ``\\n``; other characters as they are)."""
    import json

    return json.dumps(k, ensure_ascii=False)


class _JsonLines:
    def __init__(self, text: str) -> None:
        self.text = text
        self.cur = 0
        self.line = 1
        self.keys = 0
        self.too_deep = False

    def convert(self, v: Any, pline: int, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            self.too_deep = True
            return v
        text = self.text
        if type(v) is list:
            out_l = LineList([self.convert(x, pline, depth + 1) if type(x) in (dict, list) else x for x in v])
            out_l.line = pline
            return out_l
        out = LineDict()
        lines: dict[str, int] = {}
        first = 0
        for k, x in v.items():
            ks = '"' + k + '"' if k.isascii() and '"' not in k and "\\" not in k else _json_key(k)
            p = text.find(ks, self.cur) if ks is not None else -1
            if p >= 0:
                self.line += text.count("\n", self.cur, p)
                self.cur = p + len(ks)
                kline = self.line
            else:  # a key written with escapes: the line of the previous one
                kline = self.line
            self.keys += 1
            lines[k] = kline
            first = first or kline
            tx = type(x)
            if tx is dict or tx is list:
                if k in _UNREAD_KEYS:
                    self.keys += _keys_in(x)
                    out[k] = x
                else:
                    out[k] = self.convert(x, kline, depth + 1)
            else:
                out[k] = x
        out.line = first or pline
        out.key_lines = lines
        return out

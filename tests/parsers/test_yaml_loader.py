"""The fast loaders (libyaml's composer, orjson with lines found again) against PyYAML's pure-Python loader.

Every path must give the same values and the same lines, and keep the same protections: alias
bombs, nesting depth, duplicate keys, integers too long to convert.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat.errors import ConfigParseError
from meshstat.parsers import yaml_loader as yl
from meshstat.parsers.k8s import parse_manifest_text
from tests.cluster_gen import Plant, cluster, to_json, to_yaml


@pytest.fixture(autouse=True)
def _libyaml() -> None:
    yl.yaml_documents("a: 1\n", "x.yaml")  # picks the loader classes
    assert yl._C_LOADER, "PyYAML without libyaml: the fast path cannot be tested"


def _same(a, b, path="", json_lines=False) -> None:
    """Values equal, and every mapping's and key's line equal.

    ``json_lines``: ``a`` was read from JSON, where a mapping's line is its first key's (the YAML
    reader gives the line of its ``{``); key lines must still be equal.
    """
    if json_lines and path.rsplit("/", 1)[-1] in ("status", "managedFields"):
        assert a == b, path  # kept as orjson made them: no reader looks at them
        return
    assert type(a) is not dict and type(b) is not dict, path  # every mapping remembers lines
    if isinstance(b, dict):
        assert isinstance(a, dict) and list(a) == list(b), path
        if not json_lines:
            assert a.line == b.line, (path, a.line, b.line)
        elif b:
            assert a.line == b.key_lines[next(iter(b))], path
        assert dict(a.key_lines) == dict(b.key_lines), path
        for k in b:
            _same(a[k], b[k], f"{path}/{k}", json_lines)
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]", json_lines)
    else:
        assert a == b and type(a) is type(b), path


def test_libyaml_path_equals_python_path() -> None:
    text = to_yaml(cluster(12, 3, Plant(True, True, True, True, True, True, True)))
    text += "---\nanchors:\n  base: &b {a: 1, b: [x, y]}\n  merged:\n    <<: *b\n    b: 2\n  when: 2024-01-01\n"
    c = yl._c_documents(text, "c.yaml")
    p = yl._python_documents(text, "c.yaml")
    assert len(c) == len(p) == 2
    for a, b in zip(c, p, strict=True):
        _same(a, b)


def _json_vs_yaml(doc) -> None:
    """JSON read by orjson (lines found again) equals the same JSON text read by the YAML loader."""
    text = json.dumps(doc, indent=4)
    got = yl.json_documents(text)
    assert got is not None
    _same(got[0], yl._python_documents(text, "c.json")[0], json_lines=True)


def test_json_lines_equal_yaml_lines() -> None:
    _json_vs_yaml(cluster(8, 3, Plant(True, True, True, True, True, True, True)))
    # keys that need escapes in JSON (a quote, a backslash) take the walk that finds keys in turn
    _json_vs_yaml({"kind": "List", "items": [{"a\"b": {"c": 1, "d": [{"e": "x\":y"}]}, "f": {}}]})
    # a key ending in a backslash: ``\\":`` closes it (an even run of backslashes)
    odd = json.dumps({"c\\": {"d": 1}}, indent=1)
    assert yl.json_documents(odd)[0].line_of("c\\") == 2
    _json_vs_yaml({"c\\": {"d": 1}, "e\\\"": [{"\\\\\":": 2}]})
    _json_vs_yaml([{"a": []}, [], {}, {"b": [[{"c": 1}], {"d": {}}]}])


def test_kubectl_last_applied_configuration_keeps_the_key_table() -> None:
    """kubectl's ``last-applied-configuration`` annotation is JSON in a string (``{\\"kind\\":...}``): its
    escaped ``\\":`` are no keys, so the text still takes the key table, not the walk that finds each key."""
    doc = cluster(6, 2, Plant(True, True, True, True, True, True, True))
    for item in doc["items"]:
        applied = json.dumps({"kind": item["kind"], "spec": item.get("spec", {})}, separators=(",", ":")) + "\n"
        item["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = applied
    text = json.dumps(doc, indent=4)
    assert '\\":' in text
    assert len(yl._json_key_lines(text)) == text.count('":') - text.count('\\":')
    _json_vs_yaml(doc)


#: Text with what makes finding keys hard: quotes, backslashes, colons, line breaks.
_HARD_TEXT = st.text(st.sampled_from(['"', "\\", ":", "a", " ", "\n", "{", "é"]), max_size=6)
_JSON_TREES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _HARD_TEXT),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_HARD_TEXT, kids, max_size=3),
    max_leaves=12,
)


@given(tree=st.dictionaries(_HARD_TEXT, _JSON_TREES, max_size=4), indent=st.sampled_from([None, 1, 4]))
def test_json_key_table_never_gives_a_wrong_line(tree, indent) -> None:
    """Any keys and values: orjson's tree with lines found again is the YAML reader's, or it is not used."""
    text = json.dumps(tree, indent=indent, ensure_ascii=False)
    got = yl.json_documents(text)
    if got is not None:
        _same(got[0], yl._python_documents(text, "h.json")[0], json_lines=True)


def _split_key_lines(text: str) -> list[int] | None:
    """:func:`yl._json_key_lines` as it reads small texts (the split), whatever the size."""
    small = yl.NUMPY_KEY_LINES_MIN_CHARS
    yl.NUMPY_KEY_LINES_MIN_CHARS = 1 << 62
    try:
        return yl._json_key_lines(text)
    finally:
        yl.NUMPY_KEY_LINES_MIN_CHARS = small


@given(text=st.text(st.sampled_from(['"', "\\", ":", "a", " ", "\n", "é"]), max_size=60),
       piece=st.sampled_from([1, 2, 3, 5, 1 << 20]))
def test_numpy_key_table_equals_the_split(text, piece) -> None:
    """Big texts find key lines with numpy: on any text (runs of backslashes, quotes, colons, spaces before
    colons) it gives what the split of small texts gives, whatever the pieces it is passed over in (small
    pieces put every ``":``, ``" :`` and backslash run across their edges)."""
    was = yl._KEY_LINES_PIECE
    yl._KEY_LINES_PIECE = piece
    try:
        got = yl._json_key_lines_numpy(text)
    finally:
        yl._KEY_LINES_PIECE = was
    assert (None if got is None else list(got)) == _split_key_lines(text)


def test_numpy_key_table_reads_exports(monkeypatch) -> None:
    """Every JSON text through the numpy table: the lines the YAML reader gives, kubectl's escaped
    ``last-applied-configuration`` and a space before a colon included."""
    monkeypatch.setattr(yl, "NUMPY_KEY_LINES_MIN_CHARS", 0)
    doc = cluster(8, 3, Plant(True, True, True, True, True, True, True))
    for item in doc["items"]:
        applied = json.dumps({"kind": item["kind"], "k\\": {"x\\\\": 1}}, separators=(",", ":"))
        item["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = applied
    _json_vs_yaml(doc)
    text = json.dumps(doc, indent=4)
    assert list(yl._json_key_lines(text)) == _split_key_lines(text)
    spaced = text.replace('"name":', '"name" :', 1)
    assert yl._json_key_lines(spaced) is None  # each key found in turn
    _same(yl.json_documents(spaced)[0], yl._python_documents(spaced, "s.json")[0], json_lines=True)


def test_json_key_lines_are_computed_on_demand() -> None:
    text = json.dumps({"kind": "List", "items": [{"metadata": {"name": "a", "labels": {"x": "y"}},
                                                   "spec": {"replicas": 2}}]}, indent=2)
    (doc,) = yl.json_documents(text)
    item = doc["items"][0]
    with pytest.raises(AttributeError):  # nothing asked yet: the slot is empty
        yl.LineDict.__dict__["key_lines"].__get__(item)
    assert item.line_of("spec") == text.splitlines().index('      "spec": {') + 1
    assert item["spec"].line_of("replicas") == item.line_of("spec") + 1
    assert item.line_of("absent") == item.line


def test_duplicate_keys_refused_on_every_path() -> None:
    y = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n"
    for load in (yl._c_documents, yl._python_documents):
        with pytest.raises(Exception, match="duplicate key 'name' \\(first on line 4"):
            try:
                load(y, "d.yaml")
            except Exception as exc:  # the raw libyaml/PyYAML error goes through _yaml_error in yaml_documents
                raise ConfigParseError(str(exc)) from None
    with pytest.raises(ConfigParseError, match="duplicate key 'name'") as ei:
        parse_manifest_text(y, "d.yaml")
    assert ei.value.line == 5
    # JSON: orjson keeps the last value; the key count differs, the YAML reader reports it with its line
    js = '{\n  "apiVersion": "v1",\n  "kind": "Namespace",\n  "metadata": {\n    "name": "a",\n    "name": "b"\n  }\n}\n'
    assert yl.json_documents(js) is None
    with pytest.raises(ConfigParseError, match="duplicate key 'name'") as ei:
        parse_manifest_text(js, "d.json")
    assert ei.value.line == 6
    # a merge key may repeat a key the mapping writes itself
    ok = "apiVersion: v1\nkind: Namespace\nb: &b {name: x}\nmetadata:\n  <<: *b\n  name: n\n"
    assert parse_manifest_text(ok, "m.yaml").namespaces["n"].meta.line == 1


def test_nesting_refused_on_every_path() -> None:
    deep_block = "".join(" " * (2 * i) + f"k{i}:\n" for i in range(yl.MAX_DEPTH + 5)) + " " * 900 + "x: 1\n"
    with pytest.raises(ConfigParseError, match="nested deeper"):
        parse_manifest_text(deep_block, "deep.yaml")
    deep_json = '{"a":' * (yl.MAX_DEPTH + 5) + "1" + "}" * (yl.MAX_DEPTH + 5)
    assert yl.json_documents(deep_json) is None  # read as YAML, which refuses it with a line
    with pytest.raises(ConfigParseError):
        parse_manifest_text(deep_json, "deep.json")
    flow = "a: " + "[" * (yl.MAX_FLOW_DEPTH + 1) + "]" * (yl.MAX_FLOW_DEPTH + 1) + "\n"
    with pytest.raises(ConfigParseError, match="nested deeper than"):
        parse_manifest_text(flow, "flow.yaml")


def test_json_and_yaml_give_the_same_manifests() -> None:
    doc = cluster(5, 2, Plant(no_injection=True))
    y = parse_manifest_text(to_yaml(doc), "c.yaml")
    j = parse_manifest_text(to_json(doc), "c.json")
    assert [w.meta.line for w in y.workloads] != [w.meta.line for w in j.workloads]  # different texts
    assert [(w.meta.ref, w.replicas, w.pod_labels) for w in y.workloads] == \
        [(w.meta.ref, w.replicas, w.pod_labels) for w in j.workloads]
    text = to_json(doc)
    for w in j.workloads:  # each object's line is where its first key is written
        assert text.splitlines()[w.meta.line - 1].strip() == '"apiVersion": "apps/v1",'


def test_json_without_orjson_is_an_error_not_a_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshstat.errors import MeshstatError

    monkeypatch.setitem(__import__("sys").modules, "orjson", None)
    with pytest.raises(MeshstatError, match="needs the orjson package"):
        parse_manifest_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}', "a.json")



_GC_SCRIPT = r"""
import gc, sys
from meshstat.parsers.yaml_loader import gc_paused

if sys.argv[1] == "frozen":
    kept = [[i] for i in range(10)]
    gc.freeze()
gc.collect()
frozen = gc.get_freeze_count()
with gc_paused():
    built = [{"k": [i]} for i in range(100_000)]  # survivors of the block, as a cluster's model is
assert gc.isenabled()
more = [[i] for i in range(2_000)]  # a few allocations after it: a few young collections
oldest = any(o is built[0] for o in gc.get_objects(generation=2))
print(frozen, gc.get_freeze_count(), int(oldest))
"""


@pytest.mark.parametrize("state", ["plain", "frozen"])
def test_what_gc_paused_built_goes_to_the_oldest_generation(state) -> None:
    """The block's survivors go to the oldest generation, so the young collections at the next allocations do not
    walk them; objects frozen before are left frozen (and then nothing is moved). In a fresh interpreter: the
    collector's state is the process's."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _GC_SCRIPT, state], capture_output=True, text=True, check=True)
    frozen_before, frozen_after, oldest = map(int, out.stdout.split())
    assert frozen_after == frozen_before
    assert (frozen_before > 0) == (state == "frozen")
    # moved at once when nothing was frozen; else still young (2,000 allocations: no full collection yet)
    assert oldest == (state == "plain")


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_fast_path_trees_copy_and_pickle_as_line_trees(how) -> None:
    """A fast-path tree copies, deep-copies and pickles into plain line trees with the same lines."""
    import copy
    import pickle

    text = json.dumps({"kind": "List", "items": [{"a": {"b": [{"c": 1}, [{"d": {}}]]}, "e": []}]}, indent=2)
    (doc,) = yl.json_documents(text)
    got = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda x: pickle.loads(pickle.dumps(x))}[how](doc)
    assert got == doc and isinstance(got, yl.LineDict)
    item, want = got["items"][0], doc["items"][0]
    assert (got.line, got.key_lines) == (doc.line, doc.key_lines)
    assert item["a"].line_of("b") == want["a"].line_of("b") and item["a"]["b"].line == want["a"]["b"].line
    assert item["a"]["b"][1][0]["d"].line == want["a"]["b"][1][0]["d"].line

"""The fast YAML path (yaml-rs, lines found again in the text) against the exact loader.

Where :func:`~meshstat.parsers.yaml_loader.fast_yaml_documents` answers, its trees, values and lines
must be those of the exact loader (libyaml's composer, checked against PyYAML's pure-Python loader in
test_yaml_loader); where it cannot be sure it must give up (``None``), so that the exact loader reads
the text and gives its messages. The inputs: generated cluster exports, every manifest under
tests/data written out again as kubectl writes YAML, and random trees (hypothesis).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from meshstat.errors import ConfigParseError
from meshstat.parsers import yaml_loader as yl
from tests.cluster_gen import Plant, cluster, to_yaml

DATA = Path(__file__).resolve().parents[1] / "data"


def _exact(text: str) -> list:
    yl.yaml_documents("a: 1\n", "x.yaml")  # picks the loader classes
    assert yl._C_LOADER, "PyYAML without libyaml"
    return yl._c_documents(text, "x.yaml")


def _same(a, b, path: str = "", unread: bool = False) -> None:
    """Values equal; every mapping's, list's and key's line equal (outside the subtrees kept as parsed)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and list(a) == list(b), path
        if not unread:
            assert isinstance(a, yl.LineDict), path
            assert a.line == b.line, (path, a.line, b.line)
            assert dict(a.key_lines) == dict(b.key_lines), path
        for k in b:
            _same(a[k], b[k], f"{path}/{k}", unread or k in yl._UNREAD_KEYS)
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        if not unread:
            assert isinstance(a, yl.LineList) and a.line == b.line, (path, getattr(a, "line", None), b.line)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]", unread)
    else:
        assert a == b and type(a) is type(b), (path, a, b)


class _KubectlDumper(yaml.SafeDumper):
    """PyYAML's safe dumper with go-yaml's habit: a multi-line string as a literal block (``|``)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_KubectlDumper.add_representer(str, _str)


def _kubectl_yaml(objects: list) -> str:
    """Objects written as ``kubectl get -o yaml`` writes a list (go-yaml's block style, literal blocks for
    multi-line strings; PyYAML's dumper quotes the same ambiguous strings)."""
    return yaml.dump({"apiVersion": "v1", "kind": "List", "items": objects}, Dumper=_KubectlDumper,
                     sort_keys=False, allow_unicode=True, width=1 << 30)


@pytest.mark.parametrize("plant", [Plant(), Plant(True, True, True, True, True, True, True)], ids=["clean", "planted"])
def test_cluster_exports_read_fast_and_exact(plant: Plant) -> None:
    text = to_yaml(cluster(40, 4, plant))
    fast = yl.fast_yaml_documents(text)
    assert fast is not None, "a kubectl-style export must take the fast path"
    (exact,) = _exact(text)
    _same(fast[0], exact)


def _fixture_objects() -> list:
    out = []
    for path in sorted(DATA.rglob("*.yaml")):
        if "bad" in path.parts:
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue
        out.extend(d for d in docs if isinstance(d, dict))
    return out


def test_every_fixture_manifest_written_as_kubectl_does() -> None:
    objects = _fixture_objects()
    assert len(objects) > 100
    text = _kubectl_yaml(objects)
    fast = yl.fast_yaml_documents(text)
    (exact,) = _exact(text)
    if fast is None:  # some object holds something the fast path refuses: each alone must still agree
        answered = 0
        for obj in objects:
            one = _kubectl_yaml([obj])
            got = yl.fast_yaml_documents(one)
            if got is not None:
                answered += 1
                _same(got[0], _exact(one)[0])
        assert answered > 0.8 * len(objects), f"the fast path read only {answered} of {len(objects)}"
    else:
        _same(fast[0], exact)


_KEY = st.text(st.sampled_from("abcXYZ019-._/: #'\"!&*|>{}[]?%@,\t"), min_size=1, max_size=8)
_STR = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["yes", "No", "on", "OFF", "=", "1_000", "0755", "0o17", "0x1F", "1e3", "10:30", ".inf", "2024-01-01",
     "~", "null", "true", "a: b", "- x", "# c", "| x", "*", "&a", "!t", "'q'", "x\ny: z", "k:\n  - v"])
_SCALAR = _STR | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.booleans() | st.none()
_TREE = st.recursive(_SCALAR, lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEY, c, max_size=4),
                     max_leaves=25)


@settings(max_examples=300)
@given(st.lists(st.dictionaries(_KEY, _TREE, min_size=1, max_size=5), min_size=1, max_size=4))
def test_random_trees_fast_equals_exact_or_gives_up(objects: list) -> None:
    _fast_equals_exact(objects)


def _fast_equals_exact(objects: list) -> None:
    """The objects as kubectl writes them: where the fast path answers, its tree is the exact loader's."""
    text = _kubectl_yaml(objects)
    fast = yl.fast_yaml_documents(text)
    if fast is not None:
        _same(fast[0], _exact(text)[0])


_PLAIN_KEY = st.from_regex(r"[a-z][a-zA-Z0-9./-]{0,10}", fullmatch=True)
_PLAIN = st.recursive(st.text("abz09 :-./#'\n", max_size=10) | st.integers(-(10**6), 10**6) | st.booleans() | st.none(),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(_PLAIN_KEY, c, max_size=4), max_leaves=30)


@settings(max_examples=200)
@given(st.lists(st.dictionaries(_PLAIN_KEY, _PLAIN, min_size=1, max_size=5), min_size=1, max_size=4))
def test_manifest_like_trees_fast_equals_exact(objects: list) -> None:
    """Trees shaped like manifests (plain keys): where the fast path answers, it agrees."""
    _fast_equals_exact(objects)


def test_last_applied_configuration_takes_the_fast_path() -> None:
    """``kubectl apply`` leaves each object's JSON in an annotation, written as a literal block: read fast."""
    import json

    objs = []
    for i in range(5):
        obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "ns"},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}
        applied = json.dumps(obj, separators=(",", ":")) + "\n"
        obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": applied,
                                          "note": "two\nlines: with a colon\n"}
        objs.append(obj)
    text = _kubectl_yaml(objs)
    assert "last-applied-configuration: |" in text
    fast = yl.fast_yaml_documents(text)
    assert fast is None  # "lines: with a colon" inside a block looks like a key: given up, never misread
    for o in objs:
        del o["metadata"]["annotations"]["note"]
    text = _kubectl_yaml(objs)
    fast = yl.fast_yaml_documents(text)
    assert fast is not None
    _same(fast[0], _exact(text)[0])
    assert fast[0]["items"][0]["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] \
        .startswith('{"apiVersion":"v1"')


def test_plain_trees_take_the_fast_path() -> None:
    """The property above is not vacuous: ordinary manifests are read by the fast path."""
    objs = [{"kind": "Service", "metadata": {"name": f"s{i}", "labels": {"app": "x"}},
             "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "x"}, "empty": {}, "none": []}}
            for i in range(3)]
    text = _kubectl_yaml(objs)
    fast = yl.fast_yaml_documents(text)
    assert fast is not None
    _same(fast[0], _exact(text)[0])


# --------------------------------------------------------------------------- protections


@pytest.fixture
def always_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yl, "FAST_YAML_MIN_CHARS", 0)


def _export(extra: str) -> str:
    return to_yaml(cluster(4, 2)) + extra


@pytest.mark.usefixtures("always_fast")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  dup: 1\n  dup: 2\n", "found duplicate key 'dup'"),
        ("  x: " + "9" * 5000 + "\n", "too long"),
        ("  bomb:\n    a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"    {c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=False)),
         "alias bomb"),
        ("".join("  " * i + f"k{i}:\n" for i in range(1, 900)) + "  " * 900 + "v: 1\n", "nested deeper"),
    ],
    ids=["duplicate-key", "long-integer", "alias-bomb", "deep-nesting"],
)
def test_protections_hold_on_big_texts(extra: str, message: str) -> None:
    """A hostile tail on an export: refused with the exact loader's message and line, never read wrongly."""
    text = _export(extra)
    with pytest.raises(ConfigParseError) as err:
        yl.yaml_documents(text, "big.yaml")
    assert message in str(err.value) and "big.yaml:" in str(err.value)


def test_fast_path_is_taken_for_big_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    text = to_yaml(cluster(2000, 20))
    assert len(text) >= yl.FAST_YAML_MIN_CHARS

    def refuse(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the exact loader was asked")

    monkeypatch.setattr(yl, "_c_documents", refuse)
    monkeypatch.setattr(yl, "_python_documents", refuse)
    (doc,) = yl.yaml_documents(text, "c.yaml")
    assert doc["kind"] == "List" and doc.line == 1 and doc["items"][0].line == 4


# --------------------------------------------------------------------------- mutated exports

_BASE = _kubectl_yaml(
    [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "ns", "labels": {"app": "a"}},
      "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": "a"},
               "hosts": ["a", "b"], "note": "x\ny\n", "strip": "p\n\nq", "keep": "k\n\n",
               "rules": [{"matches": [{"path": {"value": "/v1"}}], "weights": [90, 10]}, {"empty": {}, "none": []}],
               "n": 1.5, "t": True, "z": None, "q": "yes"}} for i in range(3)]
)
_PIECES = [" ", "  ", "- ", ":", ": ", "\n", "\n  ", "x", "'", '"', "|", "[", "{}", "-", "#", "\t", "1", "a: b",
           "? ", "&a ", "*a", "!!str ", "---\n", "...", "%", "@", "`", "\\", "0755", "yes", "1e3", "~", "null", ",",
           "]", "}", ">", "|-", "|+", "|2", "é", "\u2028", "\r", "\x07", "[a, b]", "{a: 1}", "<<: ", "- - ",
           "\n\n", "=", "10:30", "2024-01-01", "'a'", '"a\\tb"', "9" * 20, ".5", ".inf", ".NaN", ".", ".: "]


@settings(max_examples=1000)
@given(st.lists(st.tuples(st.integers(0, len(_BASE)), st.integers(0, 3), st.sampled_from(_PIECES)), min_size=1,
                max_size=4))
def test_mutated_exports_never_read_differently(edits: list) -> None:
    """Random edits of an export: where the exact loader refuses, the fast path gives up too; where it reads,
    the fast path gives up or gives the same tree, values and lines."""
    text = _BASE
    for at, cut, piece in edits:
        text = text[:at] + piece + text[at + cut:]
    fast = yl.fast_yaml_documents(text)
    if fast is None:
        return
    try:
        exact = _exact(text)
    except ConfigParseError as exc:
        raise AssertionError(f"the fast path read a text the exact loader refuses: {exc}") from None
    assert len(exact) == 1
    _same(fast[0], exact[0])


@pytest.mark.usefixtures("always_fast")
def test_deep_block_nesting_under_the_indent_bound() -> None:
    """799 levels at one space each (under the 800-space bound): yaml-rs parses it on its thread without
    harm, the walk refuses the depth, and the exact loader gives its message and line."""
    text = "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 799)) + " " * 799 + "v: 1\n"
    assert yl.fast_yaml_documents(text) is None
    with pytest.raises(ConfigParseError, match="nested deeper than meshstat reads") as err:
        yl.yaml_documents(text, "deep.yaml")
    assert err.value.line == 401


def test_managed_fields_as_kubectl_shows_them() -> None:
    """``kubectl get -o yaml --show-managed-fields``: keys ``.``, ``f:app``, ``k:{"port":9080,...}``; read fast."""
    text = (
        "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    managedFields:\n"
        "    - apiVersion: v1\n      fieldsType: FieldsV1\n      fieldsV1:\n        f:metadata:\n          f:labels:\n"
        "            .: {}\n            f:app: {}\n        f:spec:\n          f:ports:\n            .: {}\n"
        '            k:{"port":9080,"protocol":"TCP"}:\n              .: {}\n              f:name: {}\n'
        "      manager: kubectl-client-side-apply\n      operation: Update\n      time: \"2024-05-01T10:00:00Z\"\n"
        "    name: details\n    namespace: default\n  spec:\n    clusterIP: 10.96.12.7\n    ports:\n"
        "    - name: http\n      port: 9080\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
    )
    fast = yl.fast_yaml_documents(text)
    assert fast is not None
    _same(fast[0], _exact(text)[0])
    fields = fast[0]["items"][0]["metadata"]["managedFields"][0]["fieldsV1"]
    assert list(fields["f:spec"]["f:ports"]) == [".", 'k:{"port":9080,"protocol":"TCP"}']

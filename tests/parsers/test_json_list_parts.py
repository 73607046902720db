"""A big JSON List read in two processes (``parsers.k8s._read_list_in_parts``) is the one-process read: the
same objects with the same lines, the same first error, whatever the child does.
"""

from __future__ import annotations

import itertools
import json
import os
import signal

import pytest

from meshstat.errors import ConfigParseError
from meshstat.parsers import k8s
from meshstat.parsers import yaml_loader as yl
from meshstat.parsers.k8s import parse_manifest_text
from tests.cluster_gen import Plant, as_run_today, cluster, to_json, with_namespace_sidecars, with_zone_plants


@pytest.fixture
def small_lists(monkeypatch):
    """Lists of a few hundred items split too (the real threshold is 1 MiB), each part read in pieces of a few
    items (the real pieces are of 1 MiB)."""
    monkeypatch.setattr(yl, "NUMPY_KEY_LINES_MIN_CHARS", 0)
    monkeypatch.setattr(yl, "LIST_PIECE_CHARS", 2_000)


def _kubectl_order(doc):
    """The List as ``kubectl get -o json`` orders it: apiVersion, items, kind, metadata (keys after the
    items)."""
    return {"apiVersion": "v1", "items": doc["items"], "kind": "List",
            "metadata": {"resourceVersion": "", "labels": {"a": "b"}, "x": [{"y": 1}, []]}}


def _one_process(text, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("MESHSTAT_JOBS", "1")
        return _read(text)


def _read(text):
    try:
        return parse_manifest_text(text, "c.json")
    except ConfigParseError as exc:
        return f"error: {exc}"


def _same(a, b) -> None:
    assert not isinstance(a, str) and not isinstance(b, str), (a, b)
    for f in ("namespaces", "workloads", "services", "virtual_services", "destination_rules",
              "service_entries",
              "diagnostics", "sources", "ignored", "gateway_objects", "topology", "replaced"):
        assert getattr(a, f) == getattr(b, f), f
    def unparsed(m):
        return [(meta, d, d.line, d.key_lines) for meta, d in m.unparsed]

    assert unparsed(a) == unparsed(b)


def _samples():
    """Istio's and the Gateway API's samples as the tests keep them (Bookinfo, its ambient form, the Gateway
    API and topology cases), every object of them in one List."""
    from pathlib import Path

    import yaml

    data = Path(__file__).resolve().parents[1] / "data"
    items = []
    dirs = ("bookinfo", "bookinfo-ambient", "istio", "istio-demo", "gateway-api", "topology",
            "topology_istio")
    for d in dirs:
        for f in sorted((data / d).rglob("*.yaml")):
            items += [x for x in yaml.safe_load_all(f.read_text()) if isinstance(x, dict) and "kind" in x]
    return {"apiVersion": "v1", "kind": "List", "items": items}


DOCS = {
    "samples": _samples,
    "plants": lambda: cluster(60, 6, Plant(True, True, True, True, True, True, True, True)),
    "as run today": lambda: as_run_today(cluster(40, 4)),
    "zones and sidecars": lambda: with_namespace_sidecars(with_zone_plants(cluster(30, 3), 20)),
    "kubectl order": lambda: _kubectl_order(cluster(50, 5, Plant(subset_no_pods=True))),
}


@pytest.mark.parametrize("name", DOCS)
def test_two_processes_read_what_one_reads(name, small_lists, forks, monkeypatch) -> None:
    text = to_json(DOCS[name]())
    got = _read(text)
    assert len(forks) == 1, "the List was read in two processes"
    _same(got, _one_process(text, monkeypatch))


def _with(doc, index, path, value):
    item = doc["items"][index]
    for k in path[:-1]:
        item = item[k]
    item[path[-1]] = value
    return doc


def _service_at(doc, where):
    """The index of the first Service in the first half of the items, or of the last Service."""
    found = [i for i, x in enumerate(doc["items"]) if x["kind"] == "Service"]
    return found[0] if where == "head" else found[-1]


@pytest.mark.parametrize("where", [("head",), ("tail",), ("head", "tail")])
def test_the_first_error_is_the_one_process_error(where, small_lists, forks, monkeypatch) -> None:
    """A field of the wrong type in this process's items, in the child's (which fails: its part is read here
    again), or in both: the message of the first, with its line."""
    doc = cluster(60, 6)
    for w in where:
        _with(doc, _service_at(doc, w), ("spec", "ports"), "eighty")
    text = to_json(doc)
    got, want = _read(text), _one_process(text, monkeypatch)
    assert isinstance(got, str) and got == want
    assert len(forks) == 1


@pytest.mark.parametrize("head_error", [False, True])
def test_a_key_written_twice_in_the_tail_reads_as_one_process_does(head_error, small_lists, forks,
                                                                   monkeypatch) -> None:
    """orjson keeps the last of a key written twice; the key counts of the two parts then do not meet, and the
    text is read as one process reads it (the YAML reader refuses the key), before any error of the head."""
    doc = cluster(60, 6)
    if head_error:
        _with(doc, _service_at(doc, "head"), ("spec", "ports"), "eighty")
    text = to_json(doc)
    at = text.rindex('"kind": "VirtualService"')
    text = text[:at] + '"kind": "VirtualService", ' + text[at:]
    got, want = _read(text), _one_process(text, monkeypatch)
    assert isinstance(want, str) and "duplicate" in want.lower() and got == want


@pytest.mark.parametrize("how", ["raises", "killed", "gives up"])
@pytest.mark.parametrize("sent", [0, 1, 3])
def test_a_child_that_fails_is_redone_here(how, sent, small_lists, forks, monkeypatch) -> None:
    """The child sends the objects of ``sent`` pieces and then raises, is killed or sends nothing more: what
    it sent is dropped and its whole part is read here."""
    parent = os.getpid()
    real = k8s._list_tail

    def tail(ctx, text, cut):
        gen = real(ctx, text, cut)
        for _ in range(sent):
            yield next(gen)
        if os.getpid() != parent:
            if how == "raises":
                raise RuntimeError("child only")
            if how == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            return
        yield from gen

    here = []
    real_tail = yl.ListCut.tail_items

    def read_tail(self, text):
        here.append(os.getpid())
        return real_tail(self, text)

    monkeypatch.setattr(k8s, "_list_tail", tail)
    monkeypatch.setattr(yl.ListCut, "tail_items", read_tail)
    text = to_json(_kubectl_order(cluster(50, 5)))
    got = _read(text)
    assert len(forks) == 1
    assert here == [parent]  # the tail was read again here
    _same(got, _one_process(text, monkeypatch))


def test_each_part_is_read_in_pieces(small_lists, forks, monkeypatch) -> None:
    """Pieces of a few items in both processes (each of whole items, at least 2,000 characters but the last):
    the one-process read, objects in order, lines and all."""
    text = to_json(_kubectl_order(cluster(50, 5)))
    cut = yl.json_list_cut(text, k8s.TAIL_SHARE)
    head, tail = list(cut.head_items(text)), list(cut.tail_items(text))
    assert all(isinstance(p, list) for p in head[:-1] + tail[:-1])
    assert type(head[-1]) is dict
    assert type(tail[-1]) is dict
    assert len(head) > 10
    assert len(tail) > 5
    for start, end in ((0, cut.head_end), (cut.tail_start, len(text))):
        spans = list(cut._pieces(text, start, end))
        assert spans[0][0] == start
        assert spans[-1][1] == end
        assert all(e - s >= 2_000 and text[s] == "{" and text[e - 1] == "}" for s, e in spans[:-1])
        assert all(text[e:s2] == ",\n" + " " * cut.indent for (_, e), (s2, _) in itertools.pairwise(spans))
    sent = []
    real = k8s._tail_pieces

    def pieces(child):
        got = real(child)
        sent.append(got)
        return got

    monkeypatch.setattr(k8s, "_tail_pieces", pieces)
    got = _read(text)
    assert len(forks) == 1
    assert sent[0] is not None
    assert len(sent[0][0]) == len(tail) - 1  # the child sent each piece's objects
    _same(got, _one_process(text, monkeypatch))


@pytest.mark.parametrize("piece", [1, 700, 5_000, 1 << 20])
def test_any_piece_size_reads_as_one_process(piece, small_lists, forks, monkeypatch) -> None:
    """A piece of every item, of a few, of many, of the whole part: the same objects and lines."""
    monkeypatch.setattr(yl, "LIST_PIECE_CHARS", piece)
    text = to_json(_kubectl_order(as_run_today(cluster(30, 3))))
    got = _read(text)
    assert len(forks) == 1
    _same(got, _one_process(text, monkeypatch))


@pytest.mark.parametrize("items", [[1, 2], [{"kind": "Service"}, 5], [[], {}]])
def test_items_that_are_not_objects(items, small_lists, forks, monkeypatch) -> None:
    """Items that are not objects at the end of the List: the one-process message."""
    doc = cluster(20, 2)
    doc["items"] += items
    text = to_json(doc)
    got, want = _read(text), _one_process(text, monkeypatch)
    assert isinstance(want, str) and got == want


def test_what_is_not_a_big_list_is_read_in_one_process(forks, monkeypatch) -> None:
    """A small text, a List on one line (no item boundary to cut at), JSON that is not a List although it
    opens like one, a List cut inside an object's own key (made to look like an item boundary): one part, the
    one-process read.
    """
    doc = cluster(20, 2)
    text = to_json(doc)
    _read(text)
    assert forks == []  # a small text: no child at all
    monkeypatch.setattr(yl, "NUMPY_KEY_LINES_MIN_CHARS", 0)
    one_line = json.dumps(doc)
    assert yl.json_list_cut(one_line, 0.3) is None
    _same(_read(one_line), _one_process(one_line, monkeypatch))
    not_a_list = to_json({"apiVersion": "v1", "kind": "Thing", "items": doc["items"],
                          "metadata": {"name": "x"}})
    assert yl.json_list_cut(not_a_list, 0.3) is not None
    _same(_read(not_a_list), _one_process(not_a_list, monkeypatch))
    extra = to_json({"apiVersion": "v1", "kind": "List", "items": doc["items"][:10],
                     "extra": [{"name": f"e{i}", "kind": "Service"} for i in range(3000)]})
    cut = yl.json_list_cut(extra, 0.3)
    assert cut is not None and cut.head_end > extra.index('"extra"')  # a boundary in a list after the items
    assert list(cut.head_items(extra))[-1] is None
    _same(_read(extra), _one_process(extra, monkeypatch))


_SNIPS = ('"kind": "Service", ', '"x": 1, ', "{", "}", ",", '"', "\\", ":", "]", "[", '"spec": 5, ', "\n",
          '"metadata": {}, ', '"kind": "List", ', '"items": [], ')


@pytest.mark.parametrize("seed", range(6))
def test_mutated_lists_read_as_one_process_reads(seed, small_lists, forks, monkeypatch) -> None:
    """Texts broken near the cut and near the end (a snippet inserted, characters deleted, a line doubled):
    the two-process read gives the one-process read's objects or its message, every time (fixed seeds: the
    same texts each run).
    """
    import random

    rnd = random.Random(seed)
    base = to_json(_kubectl_order(cluster(30, 3, Plant(True, True, True, True, True, True, True, True))))
    for _ in range(5):
        t = base
        for _ in range(rnd.randint(1, 3)):
            at = rnd.choice([rnd.randrange(len(t)), int(len(t) * rnd.uniform(0.6, 0.8)),
                             len(t) - rnd.randrange(1, 400)])
            op = rnd.random()
            if op < 0.4:
                t = t[:at] + rnd.choice(_SNIPS) + t[at:]
            elif op < 0.7:
                t = t[:at] + t[at + rnd.randint(1, 30):]
            elif (j := t.find("\n", at)) > 0 and (k := t.find("\n", j + 1)) > 0:
                t = t[:k] + t[j:k] + t[k:]
        got, want = _read(t), _one_process(t, monkeypatch)
        if isinstance(want, str):
            assert got == want
        else:
            _same(got, want)

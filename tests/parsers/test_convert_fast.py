"""The fast paths of the manifest converters (``parsers.k8s._plain_*``, ``parsers.topology.plain_service``)
are the checked converters: the same records (compared field by field and by their ``repr``, so that ``1``
is not ``True``), or the same error with the same message, file and line, whether they are used or not.
Checked on every manifest the tests keep, through each loader (libyaml, orjson's lazy lines, yaml-rs), and
on mutations of each kind's common shapes: every field deleted, set to null, to a boolean, to a number, to
digits as text, to text, to a list or a mapping, and the fields the fast paths leave to the checked
converters added.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from meshstat.errors import ConfigParseError
from meshstat.parsers import k8s
from meshstat.parsers import yaml_loader as yl
from meshstat.parsers.k8s import parse_manifest_text
from tests.cluster_gen import Plant, as_run_today, cluster, to_json, to_yaml, with_owned_objects

DATA = Path(__file__).resolve().parents[1] / "data"
MANIFESTS = sorted(p for p in DATA.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def _outcome(text: str, source: str) -> Any:
    try:
        return parse_manifest_text(text, source)
    except ConfigParseError as exc:
        return ("error", exc.message, exc.source, exc.line, exc.column, exc.snippet)


def _both(text: str, source: str = "m.yaml") -> tuple[Any, Any, list[str]]:
    """The outcome with the fast paths, without them, and the kinds the fast paths took."""
    taken: list[str] = []

    def counted(reader):
        def read(ctx, doc, kind, out):
            got = reader(ctx, doc, kind, out)
            if got:
                taken.append(kind)
            return got
        return read

    readers = {key: counted(reader) for key, reader in k8s._PLAIN_READERS.items()}
    with mock.patch.object(k8s, "_PLAIN_READERS", readers):
        fast = _outcome(text, source)
    with mock.patch.object(k8s, "_PLAIN_READERS", {}):
        checked = _outcome(text, source)
    return fast, checked, taken


def _same(text: str, source: str = "m.yaml") -> list[str]:
    fast, checked, taken = _both(text, source)
    assert fast == checked
    assert repr(fast) == repr(checked)
    return taken


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DATA)))
def test_every_kept_manifest(path: Path) -> None:
    _same(path.read_text(encoding="utf-8", errors="replace"), path.name)


def _kept_objects() -> list[Any]:
    """The Kubernetes objects of the kept YAML manifests (tests/data/bad left out: its files are meant not to
    load)."""
    items = []
    for path in MANIFESTS:
        if path.suffix != ".json" and path.parent.name != "bad":
            docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
            items += [d for d in docs if isinstance(d, dict) and isinstance(d.get("kind"), str)]
    return items


def test_kept_manifests_as_one_json_list() -> None:
    """orjson's trees, whose lines are worked out lazily from the text."""
    objs = [o for o in _kept_objects() if o.get("kind") != "List"]
    taken = _same(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, indent=1), "all.json")
    assert len(taken) > 50  # the samples are mostly of the common shapes


@pytest.mark.parametrize("form", ["yaml", "yaml-rs", "json"])
def test_generated_clusters(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if form == "yaml-rs":
        monkeypatch.setattr(yl, "FAST_YAML_MIN_CHARS", 0)
    write = to_json if form == "json" else to_yaml
    docs = (cluster(12, 3, Plant(*[True] * 8)), with_owned_objects(cluster(4, 2)),
            as_run_today(cluster(6, 2)))
    for doc in docs:
        taken = _same(write(doc), "c." + form[:4])
        assert {"Deployment", "Service", "VirtualService", "DestinationRule"} <= set(taken)


# --------------------------------------------------------------------------- mutations of the common shapes

_META = {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "annotations": {"a": "b"}}

BASES: dict[str, dict[str, Any]] = {
    "deployment": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _META,
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web", "version": "v1"},
                                           "annotations": {"x": "y"}},
                              "spec": {"containers": [{"name": "c", "image": "i",
                                                       "ports": [{"containerPort": 8080, "name": "http",
                                                                  "protocol": "TCP"}]}]}}},
    },
    "replicaset": {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-1",
                     "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}]},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"hostNetwork": True, "containers": [{"name": "c"}],
                                       "initContainers": [{"name": "i", "ports": [{"containerPort": 9}]}]}}},
    },
    "service": {
        "apiVersion": "v1", "kind": "Service", "metadata": _META,
        "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        "status": {"loadBalancer": {}},
    },
    "service-rich": {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lb", "annotations": {"service.kubernetes.io/topology-mode": "Auto"}},
        "spec": {"type": "LoadBalancer", "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Cluster",
                 "trafficDistribution": "PreferClose", "healthCheckNodePort": 30000, "externalName": "e",
                 "publishNotReadyAddresses": True, "selector": {},
                 "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080, "appProtocol": "http"},
                           {"port": 81}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "h"}]}},
    },
    "virtualservice": {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": _META,
        "spec": {"hosts": ["web"],
                 "http": [{"route": [{"destination": {"host": "web", "subset": "v1"}, "weight": 90},
                                     {"destination": {"host": "web", "subset": "v2"}, "weight": 10}]}]},
    },
    "virtualservice-rich": {
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "vs"},
        "spec": {"hosts": ["web", "web.shop.svc.cluster.local"], "gateways": ["mesh", "gw"],
                 "exportTo": ["."],
                 "http": [{"name": "first", "timeout": "1s", "retries": {"attempts": 3},
                           "route": [{"destination": {"host": "web", "port": {"number": 80}}}]},
                          {"route": [{"destination": {"host": "other"}, "weight": 0}]}],
                 "tcp": [{"match": [{"port": 9000}], "route": [{"destination": {"host": "db"}}]}],
                 "tls": [{"match": [{"sniHosts": ["web"]}]}]},
    },
    "destinationrule": {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": _META,
        "spec": {"host": "web", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                            {"name": "v2", "labels": {"version": "v2"}}]},
    },
    "destinationrule-rich": {
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule", "metadata": {"name": "dr"},
        "spec": {"host": "web", "exportTo": ["*"],
                 "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST",
                                                    "localityLbSetting": {"enabled": True}},
                                   "outlierDetection": {"consecutive5xxErrors": 3}},
                 "subsets": [{"name": "v1", "labels": {"version": "v1"},
                              "trafficPolicy": {"loadBalancer": {"consistentHash": {"maglev": {}}}}},
                             {"name": "v2"}]},
    },
}

_DELETE = object()
VALUES = [_DELETE, None, True, False, 0, 7, -1, 70000, 2**31, "7", "x", "", 1.5, [], {}, ["x"], [7],
          {"a": "b"}, {"a": 1}, [{}]]

#: Fields the checked converters read that the fast paths leave to them, each added to every mapping
EXTRA = {
    "match": [{"uri": {"prefix": "/a"}, "headers": {"h": {"exact": "v"}}}],
    "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 10}}},
    "redirect": {"uri": "/b"},
    "mirror": {"host": "m"},
    "portLevelSettings": [{"port": {"number": 80}, "loadBalancer": {"simple": "RANDOM"}}],
    "trafficPolicy": {"loadBalancer": {"simple": "bogus"}},
    "ownerReferences": [{"controller": True, "kind": "ReplicaSet", "name": "rs"}],
    "generateName": "gen-",
    "targetPort": "8080",
    "port": {"number": 70000},
    "nodePort": 30001,
    "tcp": [{"route": [{"destination": {"host": "t"}}]}],
    "hostNetwork": None,
    "replicas": "3",
}


def _paths(v: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*path, i))
    return out


def _mutated(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *up, last = path
    parent = doc
    for k in up:
        parent = parent[k]
    if value is _DELETE:
        del parent[last]
    else:
        parent[last] = copy.deepcopy(value)
    return doc


def _texts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(yaml.safe_dump(doc, sort_keys=False), "m.yaml"), (json.dumps(doc, indent=1), "m.json")]


def _mutants(base: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for path in _paths(base)[1:]:
        out += [_mutated(base, path, v) for v in VALUES]
        if isinstance(path[-1], int):  # the list with this entry twice
            items = _get(base, path[:-1])
            out.append(_mutated(base, path[:-1], [*items, items[path[-1]]]))
    for path in [p for p in _paths(base) if isinstance(_get(base, p), dict)]:
        out += [_mutated(base, (*path, k), v) for k, v in EXTRA.items()]
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


@pytest.mark.parametrize("name", list(BASES))
def test_common_shapes_take_the_fast_path(name: str) -> None:
    for text, source in _texts(BASES[name]):
        assert _same(text, source) == [BASES[name]["kind"]]


@pytest.mark.parametrize("name", list(BASES))
def test_mutations(name: str) -> None:
    errors = fast = 0
    for doc in _mutants(BASES[name]):
        for text, source in _texts(doc):
            f, c, taken = _both(text, source)
            assert f == c, (doc, source)
            assert repr(f) == repr(c), (doc, source)
            errors += isinstance(c, tuple)
            fast += bool(taken)
    assert errors  # the checked converter's errors were compared
    assert fast  # and the fast path's results


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_two_mutations(data: st.DataObject) -> None:
    """Two changes at once: where both are errors, the checked converter's first one is the answer."""
    doc = BASES[data.draw(st.sampled_from(sorted(BASES)))]
    for _ in range(2):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        doc = _mutated(doc, path, data.draw(st.sampled_from(VALUES)))
    for text, source in _texts(doc):
        f, c, _ = _both(text, source)
        assert f == c
        assert repr(f) == repr(c)

"""A generated Istio mesh as ``kubectl get -A -o yaml`` (or ``-o json``) prints it, for tests and benchmarks.

:func:`cluster` builds ``n_services`` Services spread over ``n_namespaces`` namespaces labelled for
injection; each Service has two versions of two replicas (Deployments ``<svc>-v1``, ``<svc>-v2``),
a DestinationRule with subsets ``v1``/``v2`` and a VirtualService sending 90 % to ``v1`` and 10 % to
``v2``. Objects carry the fields kubectl prints (uid, resourceVersion, creationTimestamp, managed
container specs, status) so that the text has the size of a real export (about 2.5 kB per Service).

:class:`Plant` names divergences to plant on purpose (one of each), used by the audit tests:
a namespace without injection, a VirtualService bound only to an ingress gateway, one exported only
to its own namespace, a Sidecar whose egress leaves services out, a subset with no pods, a subset
the DestinationRule lacks, an ambient namespace without a waypoint, a zone-restricted Service.

:func:`with_owned_objects` adds what ``kubectl get all`` also prints: each Deployment's ReplicaSets and
Pods, linked by ``ownerReferences``.

:func:`to_yaml` writes the ``List`` in kubectl's block style (a small emitter: the generator's
values are plain strings, integers, booleans, lists and mappings); :func:`to_json` with ``json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Plant", "as_run_today", "cluster", "to_json", "to_yaml", "with_namespace_sidecars", "with_owned_objects",
           "with_zone_plants"]


@dataclass(frozen=True)
class Plant:
    """Divergences to plant (each a flag); every one adds its own objects, named after the reason."""

    no_injection: bool = False  # namespace "plain" (no injection label) with a client Deployment
    gateway_only: bool = False  # VirtualService of svc-gw bound to ingress gateway only
    export_private: bool = False  # VirtualService of svc-priv exported to "." only
    sidecar_egress: bool = False  # namespace "restricted" whose Sidecar imports only ./* and istio-system/*
    subset_no_pods: bool = False  # svc-empty: subset v3 selects no pods
    subset_undefined: bool = False  # svc-undef: route to subset v3 the DestinationRule lacks
    ambient_no_waypoint: bool = False  # namespace "amb" in ambient mode, no waypoint, with svc-amb
    zone_restricted: bool = False  # svc-zone (trafficDistribution PreferClose), 2 pods in zone a, 1 in b;
    # a client Pod without a sidecar (namespace "edge") on a node of zone a


def _meta(kind: str, api: str, name: str, ns: str | None, i: int, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "generation": 1,
        "name": name,
        "resourceVersion": str(100000 + i),
        "uid": f"{i:08x}-0000-4000-8000-{i:012x}",
    }
    if ns is not None:
        md["namespace"] = ns
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": api, "kind": kind, "metadata": md}


def _deployment(name: str, ns: str, app: str, version: str, replicas: int, i: int) -> dict[str, Any]:
    d = _meta("Deployment", "apps/v1", name, ns, i, {"app": app, "version": version},
              {"deployment.kubernetes.io/revision": "1"})
    d["spec"] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": app, "version": version}},
        "template": {
            "metadata": {"labels": {"app": app, "version": version}},
            "spec": {
                "containers": [{
                    "image": f"registry.example/{app}:{version}",
                    "imagePullPolicy": "IfNotPresent",
                    "name": app,
                    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
            },
        },
    }
    d["status"] = {"readyReplicas": replicas, "replicas": replicas}
    return d


def _service(name: str, ns: str, i: int) -> dict[str, Any]:
    s = _meta("Service", "v1", name, ns, i, {"app": name})
    s["spec"] = {
        "clusterIP": f"10.96.{(i >> 8) & 255}.{i & 255}",
        "clusterIPs": [f"10.96.{(i >> 8) & 255}.{i & 255}"],
        "internalTrafficPolicy": "Cluster",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": name},
        "sessionAffinity": "None",
        "type": "ClusterIP",
    }
    s["status"] = {"loadBalancer": {}}
    return s


def _rules(name: str, ns: str, i: int, *, subsets: tuple[str, ...] = ("v1", "v2"),
           route: tuple[tuple[str, int], ...] = (("v1", 90), ("v2", 10)), gateways: list[str] | None = None,
           export_to: list[str] | None = None) -> list[dict[str, Any]]:
    dr = _meta("DestinationRule", "networking.istio.io/v1", name, ns, i)
    dr["spec"] = {"host": name, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}
    vs = _meta("VirtualService", "networking.istio.io/v1", name, ns, i)
    vs["spec"] = {"hosts": [name],
                  "http": [{"route": [{"destination": {"host": name, "subset": s}, "weight": w} for s, w in route]}]}
    if gateways is not None:
        vs["spec"]["gateways"] = gateways
    if export_to is not None:
        vs["spec"]["exportTo"] = export_to
    return [dr, vs]


def _app(name: str, ns: str, i: int, versions: tuple[str, ...] = ("v1", "v2"), **rules: Any) -> list[dict[str, Any]]:
    out = [_service(name, ns, i)]
    out += [_deployment(f"{name}-{v}", ns, name, v, 2, i) for v in versions]
    return out + _rules(name, ns, i, **rules)


def _namespace(name: str, i: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    ns = _meta("Namespace", "v1", name, None, i, {"kubernetes.io/metadata.name": name, **(labels or {})})
    ns["spec"] = {"finalizers": ["kubernetes"]}
    ns["status"] = {"phase": "Active"}
    return ns


INJECT = {"istio-injection": "enabled"}


def cluster(n_services: int, n_namespaces: int = 10, plant: Plant = Plant()) -> dict[str, Any]:  # noqa: B008
    """A ``kind: List`` of the whole mesh (see the module docstring)."""
    items: list[dict[str, Any]] = []
    names = [f"ns{k}" for k in range(n_namespaces)]
    for k, ns in enumerate(names):
        items.append(_namespace(ns, k, INJECT))
    for i in range(n_services):
        items += _app(f"svc{i}", names[i % n_namespaces], i)
    j = n_services
    if plant.no_injection:
        items.append(_namespace("plain", j))
        items.append(_deployment("client", "plain", "client", "v1", 1, j))
    if plant.gateway_only:
        items += _app("svc-gw", names[0], j + 1, gateways=["istio-system/ingress"])
    if plant.export_private:
        items += _app("svc-priv", names[0], j + 2, export_to=["."])
    if plant.sidecar_egress:
        items.append(_namespace("restricted", j + 3, INJECT))
        items.append(_deployment("client", "restricted", "client", "v1", 1, j + 3))
        sc = _meta("Sidecar", "networking.istio.io/v1", "default", "restricted", j + 3)
        sc["spec"] = {"egress": [{"hosts": ["./*", "istio-system/*"]}]}
        items.append(sc)
    if plant.subset_no_pods:
        items += _app("svc-empty", names[0], j + 4, subsets=("v1", "v2", "v3"),
                      route=(("v1", 80), ("v2", 10), ("v3", 10)))
    if plant.subset_undefined:
        items += _app("svc-undef", names[0], j + 5, route=(("v1", 80), ("v2", 10), ("v3", 10)))
    if plant.ambient_no_waypoint:
        items.append(_namespace("amb", j + 6, {"istio.io/dataplane-mode": "ambient"}))
        items += _app("svc-amb", "amb", j + 6)
    if plant.zone_restricted:
        items += _zone_plant(names[0], j + 7)
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def with_owned_objects(doc: dict[str, Any], *, replica_sets: bool = True) -> dict[str, Any]:
    """``doc`` as ``kubectl get all -A -o yaml`` prints it: after each Deployment, a ReplicaSet of an older
    revision scaled to 0, the current ReplicaSet (both controlled by the Deployment) and one Pod per
    replica (controlled by the current ReplicaSet, with its ``pod-template-hash`` label and a pod IP).
    ``replica_sets=False`` leaves the ReplicaSets out (``kubectl get deploy,pods``): the Pods still
    name theirs."""
    items: list[dict[str, Any]] = []
    n_pods = 0
    for i, it in enumerate(doc["items"]):
        items.append(it)
        if it["kind"] != "Deployment":
            continue
        md, spec = it["metadata"], it["spec"]
        ns, name, n = md["namespace"], md["name"], spec["replicas"]
        labels = spec["template"]["metadata"]["labels"]
        for rev, (h, count) in enumerate(((f"{i:07x}a0", 0), (f"{i:07x}b1", n))):
            rs_name = f"{name}-{h}"
            if replica_sets:
                rs = _meta("ReplicaSet", "apps/v1", rs_name, ns, i, {**labels, "pod-template-hash": h},
                           {"deployment.kubernetes.io/revision": str(rev + 1)})
                rs["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                      "uid": md["uid"], "controller": True,
                                                      "blockOwnerDeletion": True}]
                rs["spec"] = {"replicas": count,
                              "selector": {"matchLabels": {**spec["selector"]["matchLabels"], "pod-template-hash": h}},
                              "template": {"metadata": {"labels": {**labels, "pod-template-hash": h}},
                                           "spec": spec["template"]["spec"]}}
                items.append(rs)
            for k in range(count):
                n_pods += 1
                pod = _pod(f"{rs_name}-p{k}", ns, "", f"10.{100 + n_pods // 65536}.{n_pods // 256 % 256}."
                           f"{n_pods % 256}", {**labels, "pod-template-hash": h}, rs_name, i)
                del pod["spec"]["nodeName"]
                items.append(pod)
    return {**doc, "items": items}


def as_run_today(doc: dict[str, Any], *, zones: tuple[str, ...] = ("a", "b", "c"), nodes_per_zone: int = 2,
                 sidecar_hosts: tuple[str, ...] = ("./*", "istio-system/*")) -> dict[str, Any]:
    """``doc`` (:func:`cluster`) as a large mesh runs now: a default Sidecar in every namespace (egress
    ``sidecar_hosts``: Istio's advice for large meshes), ``trafficDistribution: PreferClose`` on every Service, and
    Nodes in ``zones`` with every Deployment's Pods (:func:`with_owned_objects`) placed on them in turn."""
    out = with_namespace_sidecars(with_owned_objects(doc, replica_sets=False), sidecar_hosts)
    nodes = [(f"node-{z}{k}", z) for z in zones for k in range(nodes_per_zone)]
    items = [_node(name, zone, j) for j, (name, zone) in enumerate(nodes)]
    placed = 0
    for it in out["items"]:
        items.append(it)
        if it["kind"] == "Pod":
            it["spec"]["nodeName"] = nodes[placed % len(nodes)][0]
            placed += 1
        elif it["kind"] == "Service":
            it["spec"]["trafficDistribution"] = "PreferClose"
    return {**out, "items": items}


def with_namespace_sidecars(doc: dict[str, Any], hosts: tuple[str, ...] = ("./*", "istio-system/*")
                            ) -> dict[str, Any]:
    """``doc`` with a Sidecar ``default`` (egress ``hosts``) after every Namespace."""
    items: list[dict[str, Any]] = []
    for it in doc["items"]:
        items.append(it)
        if it["kind"] == "Namespace":
            sc = _meta("Sidecar", "networking.istio.io/v1", "default", it["metadata"]["name"], len(items))
            sc["spec"] = {"egress": [{"hosts": list(hosts)}]}
            items.append(sc)
    return {**doc, "items": items}


def with_zone_plants(doc: dict[str, Any], n: int) -> dict[str, Any]:
    """``doc`` with ``n`` namespaces ``zns0``... each holding the zone plant (:attr:`Plant.zone_restricted`: a
    PreferClose Service over pods in zones a and b, an unmeshed client in zone a; the Nodes and ``edge`` once)."""
    items = list(doc["items"])
    seen: set[tuple[str, str | None, str]] = set()
    for k in range(n):
        for it in _zone_plant(f"zns{k}", 50_000 + k):
            key = (it["kind"], it["metadata"].get("namespace"), it["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                items.append(it)
    return {**doc, "items": items}


def _node(name: str, zone: str, i: int) -> dict[str, Any]:
    n = _meta("Node", "v1", name, None, i, {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone})
    n["spec"] = {"podCIDR": f"10.244.{i % 250}.0/24"}
    n["status"] = {"allocatable": {"cpu": "4", "memory": "16Gi"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    return n


def _pod(name: str, ns: str, node: str, ip: str, labels: dict[str, str], owner: str | None, i: int) -> dict[str, Any]:
    p = _meta("Pod", "v1", name, ns, i, labels)
    if owner is not None:
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                             "controller": True, "uid": f"{i:08x}-1111-4000-8000-{i:012x}"}]
    p["spec"] = {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:v1",
                                                   "ports": [{"containerPort": 8080, "name": "http"}]}]}
    p["status"] = {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
    return p


def _zone_plant(ns: str, i: int) -> list[dict[str, Any]]:
    """Nodes in zones a and b, svc-zone with PreferClose over 2 pods in a and 1 in b, an unmeshed client in a."""
    items = [_node("node-a", "a", i), _node("node-b", "b", i)]
    svc = _service("svc-zone", ns, i)
    svc["spec"]["trafficDistribution"] = "PreferClose"
    items.append(svc)
    for k, (version, node) in enumerate((("v1", "node-a"), ("v1", "node-a"), ("v2", "node-b"))):
        h = f"{version}hash"
        items.append(_pod(f"svc-zone-{version}-{h}-{k}", ns, node, f"10.244.{7 if node == 'node-a' else 8}.{k + 10}",
                          {"app": "svc-zone", "version": version, "pod-template-hash": h},
                          f"svc-zone-{version}-{h}", i))
    items.append(_namespace("edge", i))
    items.append(_pod("client-0", "edge", "node-a", "10.244.7.99", {"app": "client"}, None, i))
    return items


# --------------------------------------------------------------------------- writers

_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9./_-]*\Z")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return "'" + s.replace("'", "''") + "'"


def _emit(v: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, dict) and x:
                out.append(f"{pad}{_scalar(k)}:\n")
                _emit(x, indent + 2, out)
            elif isinstance(x, list) and x:
                out.append(f"{pad}{_scalar(k)}:\n")
                _emit(x, indent, out)
            else:
                out.append(f"{pad}{_scalar(k)}: {_inline(x)}\n")
    else:
        for x in v:
            if isinstance(x, dict) and x:
                sub: list[str] = []
                _emit(x, indent + 2, sub)
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.extend(sub)
            else:
                out.append(f"{pad}- {_inline(x)}\n")


def _inline(x: Any) -> str:
    if isinstance(x, dict):
        return "{}"
    if isinstance(x, list):
        return "[]"
    return _scalar(x)


def to_yaml(doc: dict[str, Any]) -> str:
    """Block-style YAML, as ``kubectl get -o yaml`` writes it."""
    out: list[str] = []
    _emit(doc, 0, out)
    return "".join(out)


def to_json(doc: dict[str, Any]) -> str:
    """JSON with kubectl's four-space indent."""
    return json.dumps(doc, indent=4)

"""Istio locality load balancing (mesh.locality) with Envoy's priority loads (mesh.endpoints).

Expected shares are worked out by hand in each test from the rules of Istio's loadbalancer.go and
Envoy's load_balancer_impl.cc (overprovisioning factor 140), not from meshstat's code. The first two
cases follow the setups of Istio's "Locality failover" and "Locality weighted distribution" tasks:
helloworld in region1/zone1/subzone1, region1/zone1/subzone2, region1/zone2/subzone3,
region2/zone3/subzone4 and region3/zone4/subzone5, the caller (sleep) in region1/zone1/subzone1.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from meshstat.errors import ConfigParseError
from meshstat.mesh.endpoints import endpoint_stage
from meshstat.mesh.locality import (
    LocalityPolicy,
    Place,
    apply_locality,
    effective_locality,
    locality_match,
    ztunnel_candidates,
    ztunnel_policy,
)
from meshstat.mesh.registry import EP
from meshstat.model import Backend, Route
from meshstat.parsers.istio_locality import LocalityLbSetting, TrafficLocality, locality_policy
from meshstat.parsers.k8s import load_manifests

DOCS = ["region1/zone1/subzone1", "region1/zone1/subzone2", "region1/zone2/subzone3", "region2/zone3/subzone4",
        "region3/zone4/subzone5"]
CALLER = Place.parse("region1/zone1/subzone1", node="n1")


def eps_at(localities, per=1, health=None):
    out = []
    for loc in localities:
        for i in range(per):
            name = f"{loc}#{i}"
            h = (health or {}).get(name, "HEALTHY")
            out.append(EP(backend=Backend(name=name, address=name), locality=Place.parse(loc).locality, health=h))
    return out


def shares(eps, caller, policy, labels=None):
    plan = apply_locality(eps, caller, policy, labels)
    stage = endpoint_stage("c", list(plan.endpoints), policy="ROUND_ROBIN", locality_weighted=plan.locality_weighted)
    r = Route(root=stage)
    got = dict(zip((b.name for b in r.backends()), r.exact_shares(), strict=True))
    return {k: v for k, v in got.items() if v}, plan


FAILOVER = LocalityLbSetting(True, failover=(("region1", "region2"),))


def test_docs_failover_priorities_and_ejection():
    pol = effective_locality(TrafficLocality(True, FAILOVER, True))
    got, plan = shares(eps_at(DOCS), CALLER, pol)
    # same subzone P0, same zone P1, same region P2, the failover region P3, the other region P4
    assert [(p, loc) for p, loc, _ in plan.priorities] == [(i, loc) for i, loc in enumerate(DOCS[:4])] + [
        (4, DOCS[4])]
    assert got == {"region1/zone1/subzone1#0": 1}
    # the docs' steps: each time the closest pod is ejected (unhealthy) the next priority takes everything
    for k in range(1, 5):
        health = {f"{loc}#0": "UNHEALTHY" for loc in DOCS[:k]}
        got, _ = shares(eps_at(DOCS, health=health), CALLER, pol)
        assert got == {f"{DOCS[k]}#0": 1}


def test_failover_needs_outlier_detection():
    pol = effective_locality(TrafficLocality(True, FAILOVER, False))
    got, plan = shares(eps_at(DOCS), CALLER, pol)
    assert {p for p, _, _ in plan.priorities} == {0}
    assert got == {f"{loc}#0": F(1, 5) for loc in DOCS}
    assert not pol.locality_weighted


def test_overprovisioning_spills_to_next_priority():
    # P0: 4 hosts, 2 healthy -> health 140*2//4 = 70; P1 (same zone) health 100 -> loads 70 / 30
    pol = effective_locality(TrafficLocality(True, LocalityLbSetting(True), True))
    eps = eps_at(DOCS[:2], per=4, health={f"{DOCS[0]}#2": "UNHEALTHY", f"{DOCS[0]}#3": "UNHEALTHY"})
    got, _ = shares(eps, CALLER, pol)
    assert got == {f"{DOCS[0]}#0": F(35, 100), f"{DOCS[0]}#1": F(35, 100)} | {
        f"{DOCS[1]}#{i}": F(30, 400) for i in range(4)}


def test_docs_distribute():
    rule = (("region1/zone1/*", (("region1/zone1/*", 70), ("region1/zone2/*", 20), ("region3/zone4/*", 10))),)
    pol = effective_locality(TrafficLocality(True, LocalityLbSetting(True, distribute=rule), True))
    got, plan = shares(eps_at(DOCS), CALLER, pol)
    # zone1's two subzones share 70: ceil(1 * 70 / 2) = 35 each; region2 is named by no 'to': dropped
    assert got == {f"{DOCS[0]}#0": F(35, 100), f"{DOCS[1]}#0": F(35, 100), f"{DOCS[2]}#0": F(20, 100),
                   f"{DOCS[4]}#0": F(10, 100)}
    assert [e.backend.name for e in plan.dropped] == [f"{DOCS[3]}#0"]
    # a caller that no 'from' matches keeps weights by endpoint count: equal
    got, _ = shares(eps_at(DOCS), Place.parse("region2/zone3/subzone4"), pol)
    assert got == {f"{loc}#0": F(1, 5) for loc in DOCS}


def test_distribute_rounds_up_per_locality():
    # three subzones share 70: ceil(70/3) = 24 each -> weights 24, 24, 24, 20, 10 of 102
    locs = ["r/z1/a", "r/z1/b", "r/z1/c", "r/z2/d", "q/z3/e"]
    rule = (("r/z1/*", (("r/z1/*", 70), ("r/z2/*", 20), ("q/*", 10))),)
    pol = effective_locality(TrafficLocality(True, LocalityLbSetting(True, distribute=rule), False))
    got, _ = shares(eps_at(locs), Place.parse("r/z1/a"), pol)
    assert got == {"r/z1/a#0": F(24, 102), "r/z1/b#0": F(24, 102), "r/z1/c#0": F(24, 102),
                   "r/z2/d#0": F(20, 102), "q/z3/e#0": F(10, 102)}


def test_distribute_weights_hosts_within_locality_by_count():
    # 'to' weight split over two localities by their endpoint counts (3 and 1): ceil(3*60/4)=45, ceil(1*60/4)=15
    locs = ["r/a/x"] * 3 + ["r/b/y", "r/c/z"]
    eps = []
    for i, loc in enumerate(locs):
        eps.append(EP(backend=Backend(name=f"h{i}"), locality=Place.parse(loc).locality))
    rule = (("r/*", (("r/a/*", 30), ("r/b/*", 30), ("r/c/*", 40))),)
    pol = effective_locality(TrafficLocality(True, LocalityLbSetting(True, distribute=rule), False))
    got, _ = shares(eps, Place.parse("r/a/x"), pol)
    assert got == {"h0": F(10, 100), "h1": F(10, 100), "h2": F(10, 100), "h3": F(30, 100), "h4": F(40, 100)}


def test_failover_priority_labels_and_prefer_close():
    # PreferClose on the Service (no DestinationRule): forced failoverPriority network, region, zone
    pol = effective_locality(None, "PreferClose")
    assert pol.force and pol.failover and pol.locality_weighted
    got, plan = shares(eps_at(DOCS), CALLER, pol)
    assert got == {f"{DOCS[0]}#0": F(1, 2), f"{DOCS[1]}#0": F(1, 2)}  # both of zone1 (subzone not in the list)
    # priorities: zone1 0, region1 other zone 1, other regions 2
    assert sorted({(p, loc) for p, loc, _ in plan.priorities}) == [(0, DOCS[0]), (0, DOCS[1]), (1, DOCS[2]),
                                                                 (2, DOCS[3]), (2, DOCS[4])]
    # a custom label with an override value: endpoints labelled version=v2 first, then the rest
    eps = [EP(backend=Backend(name=n, labels=(("version", v),)), locality=Place.parse(loc).locality)
           for n, v, loc in (("a", "v1", DOCS[0]), ("b", "v2", DOCS[3]), ("c", "v2", DOCS[4]))]
    pol = effective_locality(TrafficLocality(True, LocalityLbSetting(True, failover_priority=("version=v2",)), True))
    got, _ = shares(eps, CALLER, pol)
    assert got == {"b": F(1, 2), "c": F(1, 2)}


def test_failover_priority_without_caller_labels_changes_nothing():
    pol = effective_locality(TrafficLocality(True, LocalityLbSetting(True, failover_priority=("x",)), True))
    got, plan = shares(eps_at(DOCS[:2]), None, pol)
    assert got == {f"{DOCS[0]}#0": F(1, 2), f"{DOCS[1]}#0": F(1, 2)}


def test_effective_setting_order():
    off = TrafficLocality(True, LocalityLbSetting(False), True)
    assert effective_locality(off, "PreferClose").setting is None  # the DestinationRule wins, even to switch off
    assert effective_locality(None, None).setting == LocalityLbSetting(True)  # the mesh default
    assert not effective_locality(None, None).failover
    assert effective_locality(TrafficLocality(False, None, True), None).failover  # outlier detection alone
    assert effective_locality(None, "PreferSameNode").setting.failover_priority[-1] == "kubernetes.io/hostname"
    assert isinstance(effective_locality(None, None, None), LocalityPolicy)


def test_locality_match_wildcards():
    p = Place.parse("us-west/zone1/sub1")
    assert locality_match(p, "us-west/zone1/*") and locality_match(p, "us-west") and locality_match(p, "*")
    assert locality_match(p, "us-west/*/sub1") and not locality_match(p, "us-west/zone2/*")
    assert not locality_match(p, "us-east/*")


def test_ztunnel_prefer_close_and_local():
    eps = [EP(backend=Backend(name=n), locality=Place.parse(loc).locality, node=node)
           for n, loc, node in (("a", "r/z1", "n1"), ("b", "r/z1", "n2"), ("c", "r/z2", "n3"), ("d", "q/z9", "n9"))]
    mode, scopes = ztunnel_policy("Cluster", "PreferClose")
    assert [e.backend.name for e in ztunnel_candidates(eps, Place("r", "z1", node="n1"), mode, scopes)] == ["a", "b"]
    assert [e.backend.name for e in ztunnel_candidates(eps, Place("r", "z3", node="n5"), mode, scopes)] == ["a", "b",
                                                                                                            "c"]
    mode, scopes = ztunnel_policy("Local", "PreferClose")  # internalTrafficPolicy Local wins: Strict node
    assert [e.backend.name for e in ztunnel_candidates(eps, Place("r", "z1", node="n2"), mode, scopes)] == ["b"]
    assert ztunnel_candidates(eps, Place("r", "z1", node="n7"), mode, scopes) == []
    assert ztunnel_policy(None, None) == ("Standard", ())


DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: ns}
spec:
  host: svc
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
%s
    portLevelSettings:
    - port: {number: 9000}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 3}
"""


def _dr(tmp_path, body):
    p = tmp_path / "dr.yaml"
    p.write_text(DR % body)
    return load_manifests([str(p)]).destination_rules[0]


def test_parse_and_merge(tmp_path):
    dr = _dr(tmp_path, "        failover:\n        - {from: us-east, to: us-west}\n")
    assert dr.locality.locality.failover == (("us-east", "us-west"),)
    assert not dr.locality.has_outlier_detection
    # the subset adds outlier detection and keeps the rule's loadBalancer
    merged = locality_policy(dr.locality, dr.port_locality, dr.subset("v1").locality, 80)
    assert merged.has_outlier_detection and merged.locality.failover == (("us-east", "us-west"),)
    # port 9000's own settings replace the whole policy: no localityLbSetting there
    assert locality_policy(dr.locality, dr.port_locality, None, 9000).locality is None


@pytest.mark.parametrize("body, message", [
    ("        distribute:\n        - from: a/*\n          to: {a/*: 60, b/*: 30}\n", "sum to 90"),
    ("        failover:\n        - {from: a, to: a}\n", "both 'a'"),
    ("        failover:\n        - {from: a/z, to: b}\n", "regions"),
    ("        distribute:\n        - from: a/*\n          to: {a/*: 100}\n        failover:\n        - {from: a, to: b}\n",
     "cannot both"),
])
def test_parse_errors(tmp_path, body, message):
    with pytest.raises(ConfigParseError, match=message) as e:
        _dr(tmp_path, body)
    assert e.value.line is not None

"""The sidecar's and ztunnel's split per client zone in the three-zone cluster (tests/data/topology).

catalog has 3 pods in eu-west-1a and 1 in eu-west-1b; the clients (frontend) are 1 pod in a, 2 in b, 3 in c.
"""

from fractions import Fraction as F

from meshstat.cli import main
from meshstat.mesh import Mesh
from meshstat.parsers.k8s import load_manifests
from meshstat.topology import build_cluster
from meshstat.topology.mesh_paths import mesh_splits, sidecar_split, ztunnel_split

DATA = "tests/data/topology"
ISTIO = "tests/data/topology_istio"


def _zone_to(split, zone):
    w, d, dropped = split.by_zone[zone]
    zone_of = {e.key: e.zone for e in split.cluster.endpoints}
    out = {}
    for k, v in d.items():
        out[zone_of[k]] = out.get(zone_of[k], F(0)) + v
    return out


def test_outlier_detection_alone_turns_on_failover():
    m = load_manifests([DATA, f"{ISTIO}/catalog-outlier.yaml"])
    c = build_cluster(m, "shop/catalog", client="frontend")
    (s,) = mesh_splits(m, c, ["sidecar"])
    # a: same zone P0 (3 pods); b: its own pod P0; c: no pod in c, a and b both "same region" -> one priority
    assert _zone_to(s, "eu-west-1a") == {"eu-west-1a": 1}
    assert _zone_to(s, "eu-west-1b") == {"eu-west-1b": 1}
    assert _zone_to(s, "eu-west-1c") == {"eu-west-1a": F(3, 4), "eu-west-1b": F(1, 4)}
    b = next(e.key for e in c.endpoints if e.zone == "eu-west-1b")
    # the b pod: all of zone b's clients (2/6) + a quarter of zone c's (3/6)
    assert s.internal[b] == F(2, 6) + F(3, 6) * F(1, 4)
    # without the DestinationRule: mesh default, no outlier detection -> no priorities: 1/4 each everywhere
    s0 = sidecar_split(c)
    assert s0.internal[b] == F(1, 4)


def test_distribute_for_zone_c():
    m = load_manifests([DATA, f"{ISTIO}/catalog-distribute.yaml"])
    c = build_cluster(m, "shop/catalog", client="frontend")
    (s,) = mesh_splits(m, c, ["sidecar"])
    assert _zone_to(s, "eu-west-1c") == {"eu-west-1a": F(1, 2), "eu-west-1b": F(1, 2)}
    assert _zone_to(s, "eu-west-1a") == {"eu-west-1a": F(3, 4), "eu-west-1b": F(1, 4)}  # no rule: by count
    b = next(e.key for e in c.endpoints if e.zone == "eu-west-1b")
    assert s.internal[b] == F(1, 6) * F(1, 4) + F(2, 6) * F(1, 4) + F(3, 6) * F(1, 2)


def test_sidecar_route_uses_the_clients_node():
    m = load_manifests([DATA, f"{ISTIO}/catalog-outlier.yaml"])
    mesh = Mesh(m)
    info, _ = mesh.find_service("shop/catalog")
    port = info.ports[0].port
    by_zone = {}
    for w in m.workloads:
        if w.meta.name.startswith("frontend"):
            r = mesh.sidecar_route(w, info, port)
            got = {b.name: s for b, s in zip(r.backends(), r.exact_shares(), strict=True) if s}
            by_zone.setdefault(mesh.places[("shop", w.meta.name)].zone, got)
    assert len(by_zone["eu-west-1b"]) == 1 and len(by_zone["eu-west-1a"]) == 3
    assert sorted(by_zone["eu-west-1c"].values()) == [F(1, 4)] * 4


def test_ztunnel_prefer_close_keeps_zone():
    m = load_manifests([DATA])
    c = build_cluster(m, "shop/web", client="frontend")
    s = ztunnel_split(c)
    for z in ("eu-west-1a", "eu-west-1b", "eu-west-1c"):
        assert _zone_to(s, z) == {z: 1}
    s = ztunnel_split(c.with_policy(traffic_distribution=None))
    assert _zone_to(s, "eu-west-1c") == {"eu-west-1a": F(1, 2), "eu-west-1b": F(1, 3), "eu-west-1c": F(1, 6)}


def test_compare_shows_sidecar_beside_kube_proxy(capsys):
    rc = main(["compare", "-f", DATA, "-f", f"{ISTIO}/catalog-distribute.yaml", "--service", "shop/catalog",
               "--client", "frontend", "--lose-zone", "eu-west-1b"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "sidecar" in out and "sidecar, lose zone eu-west-1b" in out and "configured" in out
    assert "37.5%" in out  # the b pod through the sidecar (see test_distribute_for_zone_c)

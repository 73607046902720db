"""Each node's nftables-mode ruleset (``--node-rules NODE --proxy-mode nftables``) read back by meshstat.

For every node of the three-zone cluster of ``tests/data/topology`` and every traffic setting, the ``nft -f``
transaction kube-proxy would run on that node is read back twice: by ``meshstat services --nft`` (the
cluster-policy and local-policy endpoint lists and the state it reports) and by the packet tracer (the exact
split of a pod's connection to the cluster IP). Both must give the per-node split the topology model
computed (:func:`meshstat.topology.node_view`): the same endpoints with the same exact shares, or the same
DROP / REJECT.
"""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat import netfilter as nf
from meshstat.parsers.k8s import load_manifests
from meshstat.topology import build_cluster, node_nft, node_rules, node_view

DATA = Path(__file__).resolve().parents[1] / "data" / "topology"
POD = "10.244.9.9"  # a client pod of the node (inside the cluster CIDR, no endpoint)


def _cluster(scenario: str):  # noqa: ANN202
    c = build_cluster(load_manifests([str(DATA)]), "shop/web", client="shop/frontend")
    return {
        "configured": c,
        "cluster-wide": c.with_policy(traffic_distribution=None, topology_mode=None),
        "ITP Local": c.with_policy(internal_policy="Local"),
        "ETP Local": c.with_policy(external_policy="Local"),
        "both Local": c.with_policy(internal_policy="Local", external_policy="Local"),
    }[scenario]


def _services_csv(path: Path) -> dict[str, str]:
    from meshstat.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc = main(["services", "--nft", str(path), "--format", "csv"], stdout=out, stderr=err)
    assert rc == 0, err.getvalue()
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    return row


@pytest.mark.parametrize("scenario", ["configured", "cluster-wide", "ITP Local", "ETP Local", "both Local"])
def test_each_node_nft_ruleset_reads_back_as_the_model_split(scenario: str, tmp_path: Path) -> None:
    cluster = _cluster(scenario)
    svc = cluster.service
    seen_drop = False
    for node in cluster.nodes:
        view = node_view(cluster, node, "nftables")
        text = node_nft(cluster, node.name)
        assert text == node_rules(cluster, node.name, "nftables")
        path = tmp_path / f"{node.name}.nft"
        path.write_text(text)
        row = _services_csv(path)
        cat = view.categorized
        assert row["service"] == svc.port_ref and row["cluster_ip"] == svc.cluster_ip
        want_cluster = sorted(e.key for e in cat.cluster or ())
        got_cluster = sorted(x for x in row["endpoint_list"].split(",") if x)
        if cat.cluster is not None:
            assert got_cluster == want_cluster, node.name
        assert int(row["local_endpoints"]) == len(cat.local or ()), node.name
        want_state = {"split": "routed", "DROP": "dropped", "REJECT": "rejected"}[view.internal_verdict]
        assert row["state"] == want_state, (node.name, row["state"], view.internal_verdict)
        seen_drop |= view.internal_verdict == "DROP"
        # the tracer: a pod's connection to the cluster IP, exact shares per endpoint
        rs = nf.parse_nft(text, str(path))
        r = nf.trace(rs, nf.Packet(src=POD, dst=svc.cluster_ip, dport=svc.port), "output")
        got: dict[str, Fraction] = {}
        for p in r.paths:
            if p.verdict.kind == "DNAT":
                got[p.verdict.target] = got.get(p.verdict.target, Fraction(0)) + p.probability
        want = {e.key: s for e, s in view.internal}
        assert got == want, (scenario, node.name, got, want)
    # the control-plane node runs no endpoint: under internalTrafficPolicy Local its traffic is dropped
    assert seen_drop == (svc.internal_policy == "Local")


def test_zones_get_different_cluster_chains_under_prefer_close() -> None:
    c = _cluster("configured")
    a1, b1 = node_nft(c, "node-a1"), node_nft(c, "node-b1")
    assert "numgen random mod 3" in a1 and "numgen random mod 2" in b1
    assert node_nft(c, "node-a1") == node_nft(c, "node-a2")  # one zone, one ruleset (no Local policy)


def test_cli_node_rules_nftables(tmp_path: Path) -> None:
    from meshstat.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc = main(["compare", "-f", str(DATA), "--service", "shop/web", "--client", "shop/frontend",
               "--node-rules", "node-c1", "--proxy-mode", "nftables"], stdout=out, stderr=err)  # fmt: skip
    assert rc == 0, err.getvalue()
    assert out.getvalue().startswith('add table ip kube-proxy { comment "rules for kube-proxy" ; }')
    assert "numgen random mod 1 vmap { 0 : goto endpoint-" in out.getvalue()


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_local_policy_node_without_local_endpoint_drops(mode: str, tmp_path: Path) -> None:
    """A ClusterIP-only Service with internalTrafficPolicy Local: a node without a local endpoint DROPs.

    ``hasEndpoints`` (``CategorizeEndpoints``' fourth result) is about the whole cluster, so the verdict is
    ``drop`` (``"has no local endpoints"``), not the REJECT of a Service without endpoints.
    """
    from meshstat.kubeproxy import find_service
    from meshstat.parsers.netfilter import parse_iptables

    c = build_cluster(load_manifests([str(DATA)]), "shop/catalog", client="shop/frontend")
    c = c.with_policy(internal_policy="Local")
    assert not c.service.externally_accessible
    for node, local in (("node-c1", False), ("node-a2", True)):
        assert node_view(c, c.node(node), mode).internal_verdict == ("split" if local else "DROP")
        text = node_rules(c, node, mode)
        rs = parse_iptables(text, node) if mode == "iptables" else nf.parse_nft(text, node)
        info = find_service(rs, c.service.port_ref)
        assert info.state == (None if local else "dropped") and not info.rejected, (node, info.state)

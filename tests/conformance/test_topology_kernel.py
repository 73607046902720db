"""Per-node kube-proxy rulesets on the real kernel: the per-pod split of a three-zone cluster.

The cluster of ``tests/data/topology`` (Nodes, Pods, EndpointSlices): for each node that runs clients, the
ruleset kube-proxy writes on that node (:func:`meshstat.topology.node_iptables_save`, filter and nat
tables; in the nftables variant :func:`meshstat.topology.node_nft`, the ``nft -f`` transaction of its full
sync, whose ``numgen`` shares are the model's) is loaded into its own network namespace, a listener answers on every endpoint address, and the
node's clients open connections to the cluster IP: as many connections per node as its client weight
says. Every node's counts are tested against that node's model split; the statistics of the nodes add up
to one chi-square test per scenario at ALPHA (1e-5, tests/conformance/util.py; independent nodes: the statistics and the degrees of
freedom add). The per-pod totals are recorded beside the cluster-wide shares of the model.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from meshstat import model
from meshstat.oracle.netns import NetnsLab
from meshstat.parsers.k8s import load_manifests
from meshstat.stats import goodness_of_fit
from meshstat.topology import build_cluster, node_rules, node_view, split
from tests.conformance.util import ALPHA

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("netfilter_ready")]

DATA = Path(__file__).resolve().parents[1] / "data" / "topology"
#: connections per unit of client weight (frontend: 1 client on node-a1, node-b1, node-b2; 3 on node-c1)
PER_CLIENT = 1500


def _cluster(scenario: str):  # noqa: ANN202
    c = build_cluster(load_manifests([str(DATA)]), "shop/web", client="shop/frontend")
    if scenario == "cluster-wide":
        return c.with_policy(traffic_distribution=None, topology_mode=None)
    if scenario == "ITP Local":
        return c.with_policy(internal_policy="Local")
    return c


@pytest.mark.parametrize(("scenario", "mode"), [("configured", "iptables"), ("cluster-wide", "iptables"),
                                              ("ITP Local", "iptables"), ("configured", "nftables")])  # fmt: skip
def test_nodes_rulesets_split_per_pod(scenario: str, mode: str, record) -> None:  # noqa: ANN001
    from scipy import stats as st

    cluster = _cluster(scenario)
    svc = cluster.service
    vip = f"{svc.cluster_ip}:{svc.port}"
    expected = split(cluster, scenario, mode=mode)
    listen = {e.key: e.key for e in cluster.endpoints} | {model.FALL_THROUGH: vip}
    chi2 = 0.0
    dof = 0
    totals: dict[str, int] = {}
    n_all = 0
    for node, weight in sorted(cluster.clients.items()):
        view = node_view(cluster, cluster.node(node), mode)
        assert view.internal_verdict == "split", f"{node}: the model drops this node's traffic"
        n = int(PER_CLIENT * weight)
        with NetnsLab() as lab:
            if mode == "iptables":
                lab.load_iptables(node_rules(cluster, node, mode))
            else:
                lab.load_nft(node_rules(cluster, node, mode))
            lab.serve(listen)
            run = lab.connect(vip, n)
            lab.stop_servers()
        assert run.errors == 0 and not run.timed_out and run.n == n
        counts = run.counts()
        names = [e.key for e, _ in view.internal]
        shares = [s for _, s in view.internal]
        # exact part: nothing outside the node's chain (no fall-through, no other pod)
        assert sum(counts.get(k, 0) for k in names) == n, f"{node}: connections outside its chain {counts}"
        res = goodness_of_fit([counts.get(k, 0) for k in names], shares)
        chi2 += res.statistic
        dof += res.dof
        for k in names:
            totals[k] = totals.get(k, 0) + counts.get(k, 0)
        n_all += n
        record(case=f"{scenario} {mode} {node}", n=n, backends=names, counts=[counts.get(k, 0) for k in names],
               expected=[float(s) for s in shares], chi2=res.statistic, dof=res.dof, pvalue=res.pvalue)
    p = float(st.chi2.sf(chi2, dof)) if dof else 1.0
    pods = [e.key for e in expected.pods]
    record(case=f"{scenario} {mode} per pod", n=n_all, backends=pods, counts=[totals.get(k, 0) for k in pods],
           expected=[float(expected.internal.get(k, Fraction(0))) for k in pods], chi2=chi2, dof=dof, pvalue=p,
           alpha=ALPHA)  # fmt: skip
    assert p >= ALPHA, f"{scenario} ({mode}): per-node counts do not fit (chi2 {chi2:.2f}, dof {dof}, p {p:.3g})"
    # the per-pod totals: every pod the model gives traffic got some, and none the model excludes did
    assert {k for k, v in totals.items() if v} == {k for k, v in expected.internal.items() if v}

"""Services kube-proxy does not simply route: dropped, rejected, firewalled, partial syncs, stale chains.

Rulesets are written as kube-proxy writes them (``tests/kube_proxy_rules.py``, a port of
``pkg/proxy/iptables/proxier.go: syncProxyRules``): a "present but in a state we did not expect" service
must be listed with its state, never "not found".
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from meshstat import kubeproxy as kp
from meshstat import netfilter as nf
from meshstat.errors import ModelError
from tests.kube_proxy_rules import Endpoint, Service, restore_text

E = Endpoint
DATA = Path(__file__).parent.parent / "data" / "iptables"

ITP_NONE = Service("ns1", "itp-none", "172.30.1.1", 80, [E("10.244.2.1", 80, False), E("10.244.2.2", 80, False)],
                   internal_policy="Local")  # fmt: skip
ITP_SOME = Service("ns1", "itp-some", "172.30.1.2", 80, [E("10.244.1.1", 80), E("10.244.2.2", 80, False)],
                   internal_policy="Local")  # fmt: skip
NO_EPS = Service("ns2", "noeps", "172.30.1.3", 80, [], node_port=30003, external_ips=["192.0.2.3"])
ETP_NONE = Service("ns3", "etp-none", "172.30.1.5", 80, [E("10.244.2.5", 80, False)], external_policy="Local",
                   node_port=30005, lb_ips=["192.0.2.5"])  # fmt: skip
ITP_NONE_NODEPORT = Service("ns3", "itp-none-np", "172.30.1.7", 80, [E("10.244.2.7", 80, False)],
                            internal_policy="Local", node_port=30007)  # fmt: skip
LB = Service("ns4", "lb", "172.30.1.6", 80, [E("10.244.1.6", 80)], lb_ips=["192.0.2.6"],
             source_ranges=["198.18.5.0/24"], node_port=30006)  # fmt: skip
ALL = [ITP_NONE, ITP_SOME, NO_EPS, ETP_NONE, ITP_NONE_NODEPORT, LB]


def rs_of(text: str, name: str = "kube-proxy.restore") -> nf.Ruleset:
    return nf.parse_iptables(text, name)


def run(*argv: str) -> tuple[int, str, str]:
    from meshstat.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_internal_traffic_policy_local_without_local_endpoints_is_listed_as_dropped(tmp_path: Path) -> None:
    """kube-proxy writes only a filter DROP for it: the service is there, dropped."""
    text = restore_text([ITP_NONE])
    assert "*nat" in text and "KUBE-SVC" not in text  # no nat chain at all, as kube-proxy writes it
    [info] = kp.services(rs_of(text))
    assert (info.name, info.cluster_ip, info.port, info.protocol) == ("ns1/itp-none", "172.30.1.1", 80, "tcp")
    assert (info.cluster_state, info.internal_policy, info.rejected) == ("dropped", "Local", False)
    with pytest.raises(ModelError, match="internalTrafficPolicy Local and no endpoint on this node: kube-proxy drops"):
        kp.service_route(info)
    f = tmp_path / "itp.restore"
    f.write_text(text)
    rc, out, err = run("services", "--iptables", str(f), "--format", "csv")
    assert rc == 0, err
    assert out.splitlines()[1].startswith("ns1/itp-none,tcp,172.30.1.1,80,0,0,None,,Local,")
    assert out.splitlines()[1].endswith(',dropped,,""')
    rc, out, err = run("services", "--iptables", str(f), "--service", "ns1/itp-none")
    assert rc == 0, err
    assert "ns1/itp-none tcp 172.30.1.1:80: dropped" in out
    assert kp.find_service(rs_of(text), "172.30.1.1:80").name == "ns1/itp-none"


def test_every_state_of_the_shapes_kube_proxy_writes() -> None:
    by = {i.name: i for i in kp.services(rs_of(restore_text(ALL)))}
    assert set(by) == {s.port_name_string for s in ALL}
    got = {n: (i.cluster_state, i.internal_policy, i.external_policy, i.external_state) for n, i in by.items()}
    assert got == {
        "ns1/itp-none": ("dropped", "Local", None, None),
        "ns1/itp-some": ("routed", "Local", None, None),
        "ns2/noeps": ("rejected", None, None, "rejected"),
        "ns3/etp-none": ("routed", "Cluster", "Local", "dropped"),
        "ns3/itp-none-np": ("dropped", "Local", "Cluster", "routed"),
        "ns4/lb": ("routed", "Cluster", "Cluster", "routed"),
    }
    assert by["ns2/noeps"].rejected and by["ns2/noeps"].external_ips == ("192.0.2.3:80",)
    assert by["ns2/noeps"].node_ports == (30003,)
    assert by["ns3/etp-none"].external_ips == ("192.0.2.5:80",) and by["ns3/etp-none"].node_ports == (30005,)
    assert by["ns4/lb"].source_ranges == ("198.18.5.0/24",)
    assert [e.address for e in by["ns1/itp-some"].local_endpoints] == ["10.244.1.1:80"]
    # ITP Local without local endpoints but a node port: the cluster IP is dropped, external traffic routed
    np = by["ns3/itp-none-np"]
    assert (np.cluster_ip, np.cluster_chain) == ("172.30.1.7", np.cluster_chain) and np.cluster_chain
    assert any("cluster IP traffic is dropped" in n for n in np.notes)
    # the external address finds its service
    assert kp.find_service(rs_of(restore_text(ALL)), "192.0.2.6:80").name == "ns4/lb"


def test_overall_fixture_states() -> None:
    """kube-proxy's own TestOverallIPTablesRules expectation (as iptables-save printed it)."""
    by = {i.name: i for i in kp.services(nf.load(str(DATA / "kube-proxy-iptables-overall.iptables-save")))}
    assert by["ns6/svc6:p80"].cluster_state == "rejected"
    assert (by["ns2/svc2:p80"].external_policy, by["ns2/svc2:p80"].external_state) == ("Local", "dropped")
    assert by["ns5/svc5:p80"].source_ranges == ("203.0.113.0/25",)
    assert all(by[n].cluster_state == "routed" for n in ("ns1/svc1:p80", "ns3/svc3:p80", "ns4/svc4:p80"))


def test_partial_sync_is_read_with_a_warning_naming_the_missing_chains(tmp_path: Path) -> None:
    """kube-proxy's partial sync: every KUBE-SERVICES rule, only the changed services' chains."""
    changed = ["ns1/itp-some"]
    text = restore_text(ALL, changed=changed)
    rs = rs_of(text)
    [w] = [w for w in rs.warnings if "does not define" in w.message]
    missing = sorted({s.chain(p) for s in (ETP_NONE, LB) for p in ("KUBE-SVC-", "KUBE-EXT-")}
                     | {LB.chain("KUBE-FW-"), ITP_NONE_NODEPORT.chain("KUBE-EXT-")})  # fmt: skip
    assert f"jumps to {len(missing)} chains this input does not define" in w.message
    assert all(c in w.message for c in missing)
    by = {i.name: i for i in kp.services(rs)}
    assert by["ns1/itp-some"].cluster_state == "routed" and by["ns1/itp-some"].local_endpoints
    assert (by["ns4/lb"].cluster_state, by["ns4/lb"].external_state) == ("partial", "partial")
    assert by["ns4/lb"].cluster_ip == "172.30.1.6" and by["ns4/lb"].external_ips == ("192.0.2.6:80",)
    assert by["ns2/noeps"].cluster_state == "rejected"  # the filter table is written in full every time
    with pytest.raises(ModelError, match=f"its chain {LB.chain('KUBE-SVC-')} is not in this input"):
        kp.service_route(by["ns4/lb"])
    f = tmp_path / "partial.restore"
    f.write_text(text)
    rc, out, err = run("services", "--iptables", str(f), "--format", "csv")
    assert rc == 0, err
    assert "does not define" in err
    rc, out, err = run("services", "--iptables", str(f), "--service", "ns4/lb")
    assert rc == 0, err
    assert "ns4/lb tcp 172.30.1.6:80: partial, external traffic partial" in out
    assert "earlier sync defined them" in out


def test_a_full_dump_still_refuses_an_undefined_jump() -> None:
    text = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j KUBE-SVC-XYZ\nCOMMIT\n"
    with pytest.raises(Exception, match="chain 'KUBE-SVC-XYZ' does not exist in table 'nat'"):
        rs_of(text)


def test_a_stale_chain_is_not_a_live_service() -> None:
    """After a service is deleted, large clusters keep its chains a while, unreferenced (proxier.go)."""
    svc = Service("ns9", "gone", "172.30.9.9", 80, [E("10.244.9.9", 80)])
    text = restore_text([svc]).replace(
        '-A KUBE-SERVICES -m comment --comment "ns9/gone cluster IP"', "# removed:"
    )
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("# removed:")) + "\n"
    [info] = kp.services(rs_of(text))
    assert info.cluster_state == "stale" and info.cluster_ip is None
    assert any("no rule reaches" in n for n in info.notes)


def test_a_filter_only_dump_lists_what_kube_proxy_does_not_route() -> None:
    text = restore_text([ITP_NONE, NO_EPS]).split("*nat")[0]
    names = {i.name: i.cluster_state for i in kp.services(rs_of(text))}
    assert names == {"ns1/itp-none": "dropped", "ns2/noeps": "rejected"}
    assert kp.find_service(rs_of(text), "ns2/noeps").rejected


def test_local_chain_message_says_why_there_is_none() -> None:
    rs = nf.load(str(DATA / "kube-proxy-iptables-overall.iptables-save"))
    with pytest.raises(ModelError, match="has no local-policy chain"):
        kp.service_route(kp.find_service(rs, "ns4/svc4:p80"), chain="local")


def test_a_node_port_address_names_its_service() -> None:
    from meshstat.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"port 30006 is the node port of ns4/lb \(on any of the node's"):
        kp.find_service(rs_of(restore_text(ALL)), "198.18.0.2:30006")
